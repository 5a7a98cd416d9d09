// Package memstore is the embedded, in-process implementation of the four
// TaskBridge store ports: TaskRegistry (contracts.TaskRegistry), EventStore
// (contracts.EventStore with its change feed), SuspensionStore
// (contracts.SuspensionStore and contracts.SuspensionMaintenance) and
// ReceiptStore (contracts.ActionReceiptStore).
//
// Every type is safe for concurrent use and none starts a goroutine: Listen
// runs on its caller's goroutine, and retention is lazy. Terminal tasks, and
// their events, suspensions and receipts, are swept on writes (and on reads
// of expired keys) once Options.TerminalTTL has passed since the task became
// terminal, from a FIFO of deadlines, so memory stays bounded without a
// background janitor. Each task keeps at most Options.MaxEventsPerTask
// events; older ones are dropped and a Read whose cursor is older than the
// oldest retained event reports EventPage.RetentionGap.
//
// The stores of New hold a bounded amount of data: task records with their
// input, metadata and attachments, and events, are counted overall and per
// owner, and writes past Options.MaxBytes, MaxTasks, MaxBytesPerOwner or
// MaxTasksPerOwner are refused with a *contracts.LimitError (the bridge
// answers 507 STORAGE_FULL, or 429 QUOTA_EXCEEDED for one owner's share);
// data leaves the count only as retention drops it.
//
// Build the four stores with New, which returns them as the contracts.Stores
// bundle that fiberbridge.Config and the executor take, so that they share
// one clock and learn of terminal tasks from each other: the registry (a terminal status) and the
// event store (a terminal event) tell the others, and every store forgets
// the task's data TerminalTTL later. Stores built one by one with their own
// constructors expire only what they see themselves.
//
// For the task read API the event store folds every append into the task's
// contracts.TaskLogSummary (SummaryReader) and the registry keeps each
// owner's tasks in listing order (contracts.TaskLister); both go with the
// task when it expires.
//
// Event ids have the `ms-seq` shape of Redis stream ids: the clock's
// milliseconds and a sequence number, strictly increasing per task even when
// the clock stands still or goes backwards.
//
// The methods never block (except Listen, which waits for its context), so
// they ignore their ctx argument.
package memstore
