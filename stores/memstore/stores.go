package memstore

import "github.com/taskbridge/taskbridge-fiber/contracts"

// New returns the four in-memory stores configured by opts, as the bundle
// the bridge and the executor take. They share one configuration and are
// linked for retention: when the registry records a terminal status or the
// event store a terminal event, every store forgets that task's data
// Options.TerminalTTL later, and for the limits of Options.MaxBytes,
// MaxBytesPerOwner, MaxTasks and MaxTasksPerOwner, which count what the four
// hold together. The stores are safe for concurrent use; they
// start no goroutine and need no closing.
//
// The stores are a *TaskRegistry, an *EventStore, a *SuspensionStore and a
// *ReceiptStore; the event store also implements contracts.BatchReader and
// the suspension store contracts.SuspensionMaintenance.
func New(opts Options) contracts.Stores {
	cfg := opts.config()
	cfg.link = &linker{}
	cfg.quota = newQuota(cfg)
	tasks, events := newTaskRegistry(cfg), newEventStore(cfg)
	suspensions, receipts := newSuspensionStore(cfg), newReceiptStore(cfg)
	cfg.link.hooks = []terminalHook{tasks, events, suspensions, receipts}
	if cfg.quota != nil {
		cfg.link.hooks = append(cfg.link.hooks, cfg.quota)
	}
	return contracts.Stores{Tasks: tasks, Events: events, Suspensions: suspensions, Receipts: receipts}
}
