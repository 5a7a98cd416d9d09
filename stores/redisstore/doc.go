// Package redisstore implements the four TaskBridge store ports on Redis
// (github.com/redis/go-redis/v9), so that several instances behind a load
// balancer share tasks: a task created on one instance can be streamed from
// another and resumed on a third with its cursor.
//
//   - EventStore: one Redis stream per task; the stream id is the event id
//     (contracts.EventID has the same ms-seq shape). Append is one Lua
//     script that answers a held idempotency key with its event, rejects
//     appends after the terminal event, adds the event and records its
//     key, trims to the per-task cap (forgetting the trimmed events' keys),
//     refreshes TTLs, marks the terminal event and PUBLISHes the change,
//     atomically; so a retry of an append that was applied after all (by
//     go-redis after a timeout, or by the caller) stores nothing twice.
//     Read is XRANGE from an exclusive start with the retention gap and
//     the end of the stream.
//   - The change feed (EventStore.Listen) holds one subscription connection
//     per EventStore, whatever the number of listeners and clients, and
//     tells listeners to Resync after any reconnect.
//   - TaskRegistry, SuspensionStore (with contracts.SuspensionMaintenance)
//     and ReceiptStore: atomic idempotent create and compare-and-set
//     changes in Lua, TTL retention like the memory store's.
//   - LeaseStore: the leases of running tasks (a sorted set by deadline and
//     a hash of holders under {lease}), deadlines from the server's clock
//     (TIME in the scripts), so that the tasks of an instance that died are
//     taken over by another (orchestration.LeaseService).
//   - Every write script answers a retry of itself as if it had run once,
//     so go-redis's own retries of a timed-out command (MaxRetries, on by
//     default) store nothing twice.
//   - Probe: a PING with a timeout for readiness.
//
// CancelRelay carries cancel requests across instances: an in-process
// executor stops only the handlers it runs, but a cancel request may reach
// any instance. The relay wraps the local executor and goes wherever the
// executor goes; Cancel also PUBLISHes the task id on KeyPrefix+"cancel",
// every relay cancels the task locally when its record says so, and after
// every (re)subscription it sweeps the tasks its executor runs:
//
//	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
//	...
//	relay, err := redisstore.NewCancelRelay(client, opts, stores.Tasks, exec)
//	cfg.Executor = relay // fiberbridge.Config; relay.Close(ctx) at shutdown closes both
//
// Every key carries a Redis Cluster hash tag so that each script touches
// one slot; README.md documents the key layout, the options and the
// guarantees. The host owns the redis.UniversalClient and should set
// ContextTimeoutEnabled on it so that calls end with their context.
//
// Redis failures come back as errors wrapping the cause; the services turn
// them into INTERNAL_ERROR or TASK_SUBMISSION_ERROR envelopes. Nothing in
// the package panics on a Redis failure.
package redisstore
