package contracts

// Stores is the set of stores one deployment works on: the bundle that
// memstore.New and redisstore.New return and that the bridge
// (fiberbridge.Config.Stores), the services (orchestration.Options.Stores)
// and the in-process executor (orchestration.ExecutorOptions.Stores) take.
// Every field but Leases is required by those constructors; Missing names
// the ones that are not set. A host with stores of its own fills the
// fields itself.
//
// A Stores is a plain value: copy it freely. The stores in it are shared
// and safe for concurrent use.
type Stores struct {
	// Tasks stores task records.
	Tasks TaskRegistry
	// Events is the per-task event log and its change feed.
	Events EventStore
	// Suspensions stores the suspensions of tasks waiting for a client's
	// action.
	Suspensions SuspensionStore
	// Receipts stores the receipts of submitted actions.
	Receipts ActionReceiptStore
	// Leases holds the leases of running tasks, for stores that several
	// processes share: with it the in-process executor leases the tasks it
	// runs, and the services' maintenance ends (or runs again) the tasks
	// of an instance that died. Optional: redisstore.New sets it,
	// memstore.New does not (one process needs no leases: when it dies its
	// tasks die with its memory).
	Leases LeaseStore
}

// Missing returns the names of the unset fields of s ("Stores.Tasks", ...)
// in declaration order, or nil when every store is set. Constructors use it
// to report a bundle that cannot work.
func (s Stores) Missing() []string {
	var missing []string
	for _, f := range [...]struct {
		name string
		set  bool
	}{
		{"Stores.Tasks", s.Tasks != nil},
		{"Stores.Events", s.Events != nil},
		{"Stores.Suspensions", s.Suspensions != nil},
		{"Stores.Receipts", s.Receipts != nil},
	} {
		if !f.set {
			missing = append(missing, f.name)
		}
	}
	return missing
}
