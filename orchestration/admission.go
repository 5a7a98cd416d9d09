package orchestration

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Defaults of SubjectLimits.
const (
	// DefaultMaxActiveTasksPerSubject bounds one subject's queued, running
	// and suspended tasks on an instance: half of the in-process executor's
	// DefaultMaxConcurrent workers, so one subject never holds every worker
	// and never fills the queue (DefaultQueueSize) others' tasks wait in.
	DefaultMaxActiveTasksPerSubject = 32
	// DefaultCreatesPerSecond is one subject's sustained create rate.
	DefaultCreatesPerSecond = 100
	// DefaultCreateBurst is how many creates a subject may make at once
	// before DefaultCreatesPerSecond applies.
	DefaultCreateBurst = 200
)

// SubjectLimits are per-subject (task owner) quotas on creating tasks,
// kept by each instance for the creates it serves. A create past one is
// refused before anything is stored, with a *contracts.LimitError wrapping
// contracts.ErrQuotaExceeded (429 QUOTA_EXCEEDED with Retry-After), so the
// same request can simply be retried later; other subjects are not held
// back. A retry of a create that did succeed is not refused: when
// MaxActiveTasks (or the executor's capacity) refuses a create, the
// creation service looks its clientRequestId up (contracts.TaskFinder) and
// answers the existing task, deduplicated. Such a refused create costs a
// create token, as every create that reaches the store does (so a subject
// at its limit cannot make look-ups faster than CreatesPerSecond); one
// answered deduplicated gets it back. A create refused by CreatesPerSecond
// reaches no store: retried after Retry-After it answers its task. Zero
// fields take their defaults; a negative value removes that limit.
//
// The limits are kept per instance on purpose, also on Redis stores: the
// in-process executor runs a task on the instance that created it, so what
// they share out is that instance's workers and queue, and with N
// instances a subject may hold N times as much. A count shared between
// instances would cost every create and terminal event a write outside the
// task's keys (SECURITY.md, "Rate-limit in front", says more); hosts that
// need a global allowance enforce it in front of the create service.
type SubjectLimits struct {
	// MaxActiveTasks bounds the subject's tasks that are not terminal yet
	// (queued, running or suspended) among those created through this
	// instance. It is how the executor's workers and queue are shared:
	// one subject holds at most this many of them.
	//
	// Optional. Default: DefaultMaxActiveTasksPerSubject (32).
	MaxActiveTasks int
	// CreatesPerSecond is the subject's sustained create rate (a token
	// bucket refilled at this rate).
	//
	// Optional. Default: DefaultCreatesPerSecond (100).
	CreatesPerSecond float64
	// CreateBurst is the bucket's size: creates allowed at once.
	//
	// Optional. Default: DefaultCreateBurst (200).
	CreateBurst int
}

func (l SubjectLimits) withDefaults() SubjectLimits {
	if l.MaxActiveTasks == 0 {
		l.MaxActiveTasks = DefaultMaxActiveTasksPerSubject
	}
	if l.CreatesPerSecond == 0 {
		l.CreatesPerSecond = DefaultCreatesPerSecond
	}
	if l.CreateBurst == 0 {
		l.CreateBurst = DefaultCreateBurst
	}
	return l
}

// pruneEvery throttles the registry look-ups a subject at its active limit
// causes: its tasks are checked for having ended at most this often.
const pruneEvery = 200 * time.Millisecond

// admission keeps SubjectLimits. It is safe for concurrent use.
type admission struct {
	limits   SubjectLimits
	registry contracts.TaskRegistry
	clock    func() time.Time

	mu       sync.Mutex
	subjects map[string]*subjectState
}

type subjectState struct {
	tokens  float64
	refill  time.Time           // when tokens was last topped up
	active  map[string]struct{} // tasks admitted and not seen ended
	pending int                 // admitted creates not yet committed or cancelled
	pruned  time.Time
}

func newAdmission(limits SubjectLimits, registry contracts.TaskRegistry, clock func() time.Time) *admission {
	return &admission{limits: limits.withDefaults(), registry: registry, clock: clock, subjects: make(map[string]*subjectState)}
}

// ticket is an admitted create: commit it with the task's id once the task
// was submitted, or cancel it (exactly one of the two).
type ticket struct {
	a       *admission
	subject string
}

// admit takes a create token and an active slot of subject, or refuses.
// With both limits off it keeps nothing (the zero ticket).
func (a *admission) admit(ctx context.Context, subject string) (ticket, error) {
	if a.limits.MaxActiveTasks <= 0 && a.limits.CreatesPerSecond <= 0 {
		return ticket{}, nil
	}
	now := a.clock()
	a.mu.Lock()
	s := a.subjects[subject]
	if s == nil {
		s = &subjectState{tokens: float64(a.limits.CreateBurst), refill: now, active: make(map[string]struct{})}
		a.subjects[subject] = s
	}
	if rate := a.limits.CreatesPerSecond; rate > 0 {
		s.tokens = min(float64(a.limits.CreateBurst), s.tokens+now.Sub(s.refill).Seconds()*rate)
		s.refill = now
		if s.tokens < 1 {
			wait := time.Duration((1 - s.tokens) / rate * float64(time.Second))
			a.mu.Unlock()
			return ticket{}, &contracts.LimitError{Err: contracts.ErrQuotaExceeded, Limit: limitCreatesPerSecond,
				Max: int64(rate), RetryAfter: wait}
		}
	}
	if max := a.limits.MaxActiveTasks; max > 0 && len(s.active)+s.pending >= max {
		if now.Sub(s.pruned) < pruneEvery {
			err := a.activeLimit(s)
			a.mu.Unlock()
			return ticket{}, err
		}
		s.pruned = now
		ids := make([]string, 0, len(s.active))
		for id := range s.active {
			ids = append(ids, id)
		}
		a.mu.Unlock()
		ended := a.ended(ctx, ids)
		a.mu.Lock()
		for _, id := range ended {
			delete(s.active, id)
		}
		if len(s.active)+s.pending >= max {
			err := a.activeLimit(s)
			a.mu.Unlock()
			return ticket{}, err
		}
	}
	if a.limits.CreatesPerSecond > 0 {
		s.tokens--
	}
	s.pending++
	a.mu.Unlock()
	return ticket{a: a, subject: subject}, nil
}

// Names of the limits in LimitError.Limit (and the envelope's
// details.limit).
const (
	limitMaxActiveTasks   = "MaxActiveTasks"
	limitCreatesPerSecond = "CreatesPerSecond"
)

// activeLimit is the refusal by MaxActiveTasks. It takes a create token
// (the caller may look the request up, see refund). a.mu must be held.
func (a *admission) activeLimit(s *subjectState) error {
	if a.limits.CreatesPerSecond > 0 && s.tokens >= 1 {
		s.tokens--
	}
	return &contracts.LimitError{Err: contracts.ErrQuotaExceeded, Limit: limitMaxActiveTasks,
		Max: int64(a.limits.MaxActiveTasks), RetryAfter: time.Second}
}

// refusedByActiveLimit reports whether err is admit's refusal by
// MaxActiveTasks.
func refusedByActiveLimit(err error) bool {
	var le *contracts.LimitError
	return errors.As(err, &le) && le.Limit == limitMaxActiveTasks
}

// refund gives subject back the create token of a refused create that
// turned out to repeat an existing task.
func (a *admission) refund(subject string) {
	if a.limits.CreatesPerSecond <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.subjects[subject]; s != nil {
		s.tokens = min(float64(a.limits.CreateBurst), s.tokens+1)
		a.forgetIdleLocked(subject, s)
	}
}

// ended returns the ids among ids whose task is terminal or gone.
func (a *admission) ended(ctx context.Context, ids []string) []string {
	var out []string
	for _, id := range ids {
		rec, err := a.registry.Get(ctx, id)
		switch {
		case errors.Is(err, contracts.ErrNotFound):
			out = append(out, id)
		case err == nil && rec.Status.IsTerminal():
			out = append(out, id)
		}
	}
	return out
}

// commit counts taskID as one of the subject's active tasks.
func (t ticket) commit(taskID string) {
	if t.a == nil {
		return
	}
	t.a.mu.Lock()
	s := t.a.subjects[t.subject]
	s.pending--
	if t.a.limits.MaxActiveTasks > 0 {
		s.active[taskID] = struct{}{} // counted only where a limit needs the count
	}
	t.a.forgetIdleLocked(t.subject, s)
	t.a.mu.Unlock()
}

// cancel gives the slot back (the create stored nothing new); refund
// also gives the create token back (the request found its task already
// created: a retry is not a new create).
func (t ticket) cancel(refund bool) {
	if t.a == nil {
		return
	}
	t.a.mu.Lock()
	s := t.a.subjects[t.subject]
	s.pending--
	if refund && t.a.limits.CreatesPerSecond > 0 {
		s.tokens = min(float64(t.a.limits.CreateBurst), s.tokens+1)
	}
	t.a.forgetIdleLocked(t.subject, s)
	t.a.mu.Unlock()
}

// forgetIdleLocked drops a subject's state once it holds nothing a later
// create would need (no tasks, a bucket that has refilled by now), so the
// map does not grow with every subject ever seen.
func (a *admission) forgetIdleLocked(subject string, s *subjectState) {
	if s.pending != 0 || len(s.active) != 0 {
		return
	}
	if rate := a.limits.CreatesPerSecond; rate > 0 &&
		s.tokens+a.clock().Sub(s.refill).Seconds()*rate < float64(a.limits.CreateBurst) {
		return
	}
	delete(a.subjects, subject)
}

// sweep forgets the ended tasks of every subject and the subjects left
// idle; Services.RunMaintenance calls it.
func (a *admission) sweep(ctx context.Context) {
	a.mu.Lock()
	work := make(map[string][]string, len(a.subjects))
	for subject, s := range a.subjects {
		for id := range s.active {
			work[subject] = append(work[subject], id)
		}
		if len(s.active) == 0 {
			a.forgetIdleLocked(subject, s)
		}
	}
	a.mu.Unlock()
	for subject, ids := range work {
		ended := a.ended(ctx, ids)
		a.mu.Lock()
		if s := a.subjects[subject]; s != nil {
			for _, id := range ended {
				delete(s.active, id)
			}
			a.forgetIdleLocked(subject, s)
		}
		a.mu.Unlock()
	}
}
