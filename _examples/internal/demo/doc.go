// Package demo holds the demo task types the examples share (quickstart on
// memory, redis on Redis): their handlers, the create-time validation of
// their input, and the demo authentication scheme.
//
//   - demo.progress: TASK_PROGRESS events rising to 100, then completes.
//   - demo.fail: one TASK_PROGRESS, then TASK_FAILED with DEMO_FAILURE.
//   - demo.approval: suspends until a client approves or rejects.
//   - demo.sleep: progress events until it is cancelled.
//
// An example wires them with Register (on its executor), ValidateInput (as
// fiberbridge.Config.CreatePreprocessor, so bad input answers 400
// INVALID_REQUEST before a task exists) and Auth (as
// fiberbridge.Config.AuthResolver). The package belongs to the examples,
// not to the library; its names hold no state and are safe for concurrent
// use.
package demo
