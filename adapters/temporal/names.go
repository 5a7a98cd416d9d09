package tbtemporal

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// Names the executor and the workers agree on. A worker and the bridges that
// submit to it must use the same TaskQueue and WorkflowIDPrefix.
const (
	// WorkflowName is the Temporal workflow type every task runs as; its
	// argument is the task's contracts.TaskRecord.
	WorkflowName = "taskbridge.Task"
	// ActionSignal is the signal that hands an accepted client action to a
	// suspended task.
	ActionSignal = "taskbridge.action"
	// DefaultTaskQueue is the task queue of ExecutorOptions and
	// WorkerOptions when they name none.
	DefaultTaskQueue = "taskbridge"
	// DefaultWorkflowIDPrefix is put before a task id to make its workflow
	// id when the options name no prefix.
	DefaultWorkflowIDPrefix = "taskbridge-task-"
)

// Codes of the TASK_FAILED events the adapter writes itself. A handler's
// *orchestration.TaskError keeps its own code; the codes shared with the
// in-process executor (TASK_FAILED, TASK_PANIC, TASK_RESULT_INVALID,
// SUSPENSION_EXPIRED, SUSPENSION_CANCELLED) come from package orchestration.
const (
	// CodeTaskTimeout: a step ran past its start-to-close (or heartbeat, or
	// schedule-to-close) timeout on its last attempt. Retryable: a new task
	// may finish in time.
	CodeTaskTimeout = "TASK_TIMEOUT"
	// CodeUnknownTaskType: the worker that picked the task up has no
	// handler for its type (a bridge accepts a type its workers lack).
	// Not retryable.
	CodeUnknownTaskType = "UNKNOWN_TASK_TYPE"
	// CodeTaskFailed, CodeTaskPanic and CodeInvalidResult are the
	// in-process executor's codes, written in the same cases.
	CodeTaskFailed    = orchestration.CodeTaskFailed
	CodeTaskPanic     = orchestration.CodeTaskPanic
	CodeInvalidResult = orchestration.CodeInvalidResult
)

// WorkflowID returns the workflow id of taskID under prefix (empty:
// DefaultWorkflowIDPrefix). The id is a pure function of the task id, so a
// submit repeated after a timeout or by another bridge instance finds the
// workflow already started instead of starting a second one.
func WorkflowID(prefix, taskID string) string {
	if prefix == "" {
		prefix = DefaultWorkflowIDPrefix
	}
	return prefix + taskID
}

// suspendIDOf is the suspend id of the suspension a task opens with write
// key: 32 hex digits, the shape of contracts.NewID, taken from a SHA-256 of
// the task id and the key, so every run of the workflow code picks the
// same id for the same suspension.
func suspendIDOf(taskID, key string) string {
	sum := sha256.Sum256([]byte(taskID + "\x00" + key))
	return hex.EncodeToString(sum[:16])
}
