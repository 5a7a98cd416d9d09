package memstore

// Stores bundles the four in-memory stores built by New. They share one
// configuration and are linked for retention: when the registry records a
// terminal status or the event store a terminal event, every store forgets
// that task's data Options.TerminalTTL later. The fields are set once and
// safe for concurrent use.
type Stores struct {
	Tasks       *TaskRegistry
	Events      *EventStore
	Suspensions *SuspensionStore
	Receipts    *ReceiptStore
}

// New returns the four stores configured by opts and linked for retention.
func New(opts Options) *Stores {
	cfg := opts.config()
	cfg.link = &linker{}
	s := &Stores{
		Tasks:       newTaskRegistry(cfg),
		Events:      newEventStore(cfg),
		Suspensions: newSuspensionStore(cfg),
		Receipts:    newReceiptStore(cfg),
	}
	cfg.link.hooks = []terminalHook{s.Tasks, s.Events, s.Suspensions, s.Receipts}
	return s
}
