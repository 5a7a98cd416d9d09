package tbtemporal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// Step is a running step attempt's handle on its task's stream, found in
// the step's context with StepFrom. Its events carry idempotency keys made
// from the step and the count of the attempt's events before them: the
// n-th event of every attempt of a step is the same event, so an attempt
// that repeats what a lost attempt already reported appends nothing twice
// (a step that skips work a lost attempt did should report through Emit
// only what it has not reported, or report the same sequence again). A
// Step is safe for concurrent use by the step's goroutines.
type Step struct {
	taskID string
	key    string // "temporal/step/<activity id>/"
	acts   *activities

	mu      sync.Mutex
	n       int
	details []any
}

type stepKey struct{}

// StepFrom returns the Step of a step's context: the ctx a step activity
// (registered with Worker.RegisterStep and run by Task.ExecuteStep)
// receives. ok is false in any other context.
func StepFrom(ctx context.Context) (s *Step, ok bool) {
	s, ok = ctx.Value(stepKey{}).(*Step)
	return s, ok
}

// TaskID returns the id of the step's task.
func (s *Step) TaskID() string { return s.taskID }

// Progress appends TASK_PROGRESS; pct must be within 0..100.
func (s *Step) Progress(ctx context.Context, pct float64, stage, message string) error {
	draft, err := contracts.Progress(pct, stage, message)
	if err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "invalid event")
	}
	return s.Emit(ctx, draft)
}

// Message appends TASK_MESSAGE at level ("" means unspecified).
func (s *Step) Message(ctx context.Context, message string, level contracts.MessageLevel) error {
	draft, err := contracts.Message(message, level)
	if err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "invalid event")
	}
	return s.Emit(ctx, draft)
}

// Emit appends a non-terminal event (terminal events come from the
// handler's return value: INVALID_REQUEST). It fails with an error
// wrapping contracts.ErrTerminal once the task has ended.
func (s *Step) Emit(ctx context.Context, draft contracts.EventDraft) error {
	if draft.IsZero() || draft.Type().IsTerminal() {
		return bridgeerr.New(bridgeerr.CodeInvalidRequest,
			"terminal events are written from the handler's return value; build others with a contracts constructor")
	}
	s.mu.Lock()
	s.n++
	key := s.key + strconv.Itoa(s.n)
	s.mu.Unlock()
	_, err := s.acts.emitKeyed(ctx, s.taskID, key, draft)
	return err
}

// Heartbeat records a heartbeat with details (see activity.RecordHeartbeat:
// a retried attempt reads the last details with
// activity.GetHeartbeatDetails). The adapter heartbeats for every step by
// itself, repeating the last details given here, so a step needs to call
// Heartbeat only to record a checkpoint.
func (s *Step) Heartbeat(ctx context.Context, details ...any) {
	s.mu.Lock()
	s.details = details
	s.mu.Unlock()
	activity.RecordHeartbeat(ctx, details...)
}

func (s *Step) lastDetails() []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.details
}

// stepInterceptor gives every step of the adapter's workflows its Step,
// its retry notice, its heartbeats and the encoding of its TaskError.
type stepInterceptor struct {
	interceptor.WorkerInterceptorBase
	w *Worker
}

// InterceptActivity implements interceptor.WorkerInterceptor.
func (i *stepInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &stepInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, w: i.w}
}

type stepInbound struct {
	interceptor.ActivityInboundInterceptorBase
	w *Worker
}

// ExecuteActivity runs a step attempt: attempts after the first append a
// TASK_MESSAGE (warning) first; a goroutine heartbeats every third of the
// heartbeat timeout until the attempt returns; an *orchestration.TaskError
// returned by the step becomes a non-retryable application error that
// carries its code, message and retryability to the workflow. Activities
// of other workflows pass through untouched.
func (s *stepInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	taskID, ours := strings.CutPrefix(info.WorkflowExecution.ID, s.w.prefix)
	if info.IsLocalActivity || info.WorkflowType == nil || info.WorkflowType.Name != WorkflowName || !ours {
		return s.Next.ExecuteActivity(ctx, in)
	}
	step := &Step{taskID: taskID, key: "temporal/step/" + info.ActivityID + "/", acts: s.w.acts}
	ctx = context.WithValue(ctx, stepKey{}, step)
	if info.Attempt > 1 {
		s.retryNotice(ctx, step, info)
	}
	if hb := info.HeartbeatTimeout / 3; hb > 0 {
		stop := make(chan struct{})
		done := make(chan struct{})
		// Owned by this attempt: stopped before ExecuteActivity returns.
		go func() {
			defer close(done)
			t := time.NewTicker(hb)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-t.C:
					activity.RecordHeartbeat(ctx, step.lastDetails()...)
				}
			}
		}()
		defer func() {
			close(stop)
			<-done
		}()
	}
	res, err := s.Next.ExecuteActivity(ctx, in)
	var te *orchestration.TaskError
	if errors.As(err, &te) && te.Code != "" {
		err = temporal.NewNonRetryableApplicationError("step failed with "+te.Code, errTypeTask, nil,
			taskErrorDetails{Code: te.Code, Message: te.Message, Retryable: te.Retryable})
	}
	return res, err
}

// retryNotice appends the TASK_MESSAGE that tells clients a step is being
// tried again. Its key is the attempt's, so it appears once per attempt.
func (s *stepInbound) retryNotice(ctx context.Context, step *Step, info activity.Info) {
	msg := fmt.Sprintf("retrying step %s: attempt %d", info.ActivityType.Name, info.Attempt)
	if info.RetryPolicy != nil && info.RetryPolicy.MaximumAttempts > 0 {
		msg += fmt.Sprintf(" of %d", info.RetryPolicy.MaximumAttempts)
	}
	draft, err := contracts.Message(msg, contracts.LevelWarning)
	if err == nil {
		_, err = s.w.acts.emitKeyed(ctx, step.taskID, step.key+"retry/"+strconv.Itoa(int(info.Attempt)), draft)
	}
	if err != nil {
		s.w.acts.log.Warn("temporal.step.retry_notice_failed", observe.Entry{
			TaskID: step.taskID, Transport: observe.TransportInternal, Outcome: "failed", Err: err,
		})
	}
}
