package memstore

import (
	"time"
)

// Defaults applied to zero fields of Options.
const (
	// DefaultTerminalTTL is how long a terminal task and its data stay.
	DefaultTerminalTTL = time.Hour
	// DefaultMaxEventsPerTask is the per-task event cap.
	DefaultMaxEventsPerTask = 10_000
	// DefaultReceiptTTL is the lifetime of a receipt saved without ExpiresAt.
	DefaultReceiptTTL = 24 * time.Hour
	// DefaultMaxBytes bounds the bytes of task records (input, metadata,
	// attachments) and events the stores hold (256 MiB).
	DefaultMaxBytes = 256 << 20
	// DefaultMaxBytesPerOwner bounds those bytes per owner (64 MiB).
	DefaultMaxBytesPerOwner = 64 << 20
	// DefaultMaxTasks bounds the tasks held, terminal ones included until
	// their retention ends.
	DefaultMaxTasks = 100_000
	// DefaultMaxTasksPerOwner bounds the tasks held per owner.
	DefaultMaxTasksPerOwner = 10_000
)

// Options configures the stores. The zero value is usable: every zero field
// takes its default. Options is read once by the constructors.
type Options struct {
	// Clock returns the current time; it stamps records and events, assigns
	// event ids and drives retention. Tests pass a fake clock.
	//
	// Optional. Default: time.Now.
	Clock func() time.Time

	// TerminalTTL is how long a task stays after it became terminal (a
	// terminal status in the registry or a terminal event in the event
	// store), together with its events, suspensions and receipts and its
	// idempotency key. A negative value keeps terminal tasks forever.
	//
	// Optional. Default: DefaultTerminalTTL (1h).
	TerminalTTL time.Duration

	// MaxEventsPerTask caps the events retained per task; the oldest are
	// dropped first and readers see EventPage.RetentionGap. A negative value
	// disables the cap.
	//
	// Optional. Default: DefaultMaxEventsPerTask (10,000).
	MaxEventsPerTask int

	// ReceiptTTL is the lifetime of a receipt saved with a zero ExpiresAt;
	// the store sets ExpiresAt to CreatedAt + ReceiptTTL. A negative value
	// keeps such receipts until their task expires.
	//
	// Optional. Default: DefaultReceiptTTL (24h).
	ReceiptTTL time.Duration

	// MaxBytes bounds what the stores of a bundle (New) hold: task records
	// with their input, metadata and attachment contents, and events, each
	// counted with a small fixed overhead. A create or an event past it is
	// refused with a *contracts.LimitError wrapping contracts.ErrStoreFull
	// (507 STORAGE_FULL); terminal events are always taken, so tasks can
	// end. Data leaves the count when retention drops it (TerminalTTL,
	// MaxEventsPerTask); nothing is evicted early to make room. A negative
	// value removes the limit. Only New's bundle counts; stores built one
	// by one are unbounded.
	//
	// Optional. Default: DefaultMaxBytes (256 MiB).
	MaxBytes int64

	// MaxBytesPerOwner is MaxBytes for the tasks of one owner (subject);
	// past it the owner's writes are refused with contracts.ErrQuotaExceeded
	// (429 QUOTA_EXCEEDED with Retry-After) while others go on. A negative
	// value removes the limit.
	//
	// Optional. Default: DefaultMaxBytesPerOwner (64 MiB).
	MaxBytesPerOwner int64

	// MaxTasks bounds the tasks held (terminal ones until their retention
	// ends); past it creates are refused with contracts.ErrStoreFull. A
	// negative value removes the limit.
	//
	// Optional. Default: DefaultMaxTasks (100,000).
	MaxTasks int

	// MaxTasksPerOwner bounds the tasks one owner holds; past it its
	// creates are refused with contracts.ErrQuotaExceeded. A negative value
	// removes the limit.
	//
	// Optional. Default: DefaultMaxTasksPerOwner (10,000).
	MaxTasksPerOwner int
}

// config is Options with defaults applied, plus the link New sets up.
type config struct {
	clock       func() time.Time
	terminalTTL time.Duration
	maxEvents   int
	receiptTTL  time.Duration
	link        *linker

	maxBytes, maxBytesPerOwner int64
	maxTasks, maxTasksPerOwner int
	quota                      *quota // set by New; nil: unbounded
}

func (o Options) config() config {
	c := config{
		clock:       o.Clock,
		terminalTTL: o.TerminalTTL,
		maxEvents:   o.MaxEventsPerTask,
		receiptTTL:  o.ReceiptTTL,
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.terminalTTL == 0 {
		c.terminalTTL = DefaultTerminalTTL
	}
	if c.maxEvents == 0 {
		c.maxEvents = DefaultMaxEventsPerTask
	}
	if c.receiptTTL == 0 {
		c.receiptTTL = DefaultReceiptTTL
	}
	c.maxBytes = orDefault(o.MaxBytes, DefaultMaxBytes)
	c.maxBytesPerOwner = orDefault(o.MaxBytesPerOwner, DefaultMaxBytesPerOwner)
	c.maxTasks = int(orDefault(int64(o.MaxTasks), DefaultMaxTasks))
	c.maxTasksPerOwner = int(orDefault(int64(o.MaxTasksPerOwner), DefaultMaxTasksPerOwner))
	return c
}

// now returns the clock's time without a monotonic reading, so stored times
// compare with == and serialise identically.
func (c *config) now() time.Time { return c.clock().Round(0) }

// terminalHook is implemented by every store: it schedules the removal of a
// task's data at deadline (the first deadline wins).
type terminalHook interface {
	expireTask(taskID string, deadline time.Time)
}

// linker fans a terminal signal out to the stores of one bundle. Its hook
// list is fixed before any store is used.
type linker struct {
	hooks []terminalHook
}

// terminated reports that taskID became terminal at at. self is the calling
// store, notified directly when it is not part of a bundle.
func (c *config) terminated(self terminalHook, taskID string, at time.Time) {
	if c.terminalTTL < 0 {
		return
	}
	deadline := at.Add(c.terminalTTL)
	if c.link == nil {
		self.expireTask(taskID, deadline)
		return
	}
	for _, h := range c.link.hooks {
		h.expireTask(taskID, deadline)
	}
}

// orDefault returns def for 0, -1 (no limit) for a negative v, else v.
func orDefault(v, def int64) int64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return -1
	}
	return v
}
