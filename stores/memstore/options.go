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
}

// config is Options with defaults applied, plus the link New sets up.
type config struct {
	clock       func() time.Time
	terminalTTL time.Duration
	maxEvents   int
	receiptTTL  time.Duration
	link        *linker
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
