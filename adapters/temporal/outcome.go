package tbtemporal

import (
	"errors"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// outcomeOf maps a handler's return to the task's terminal event, with the
// in-process executor's rules where they apply: a requested cancellation
// wins over anything the handler returned; a panic is TASK_PANIC; a result
// is TASK_COMPLETED (TASK_RESULT_INVALID when it is not JSON); an error is
// TASK_FAILED as failureOf says.
func outcomeOf(ctx workflow.Context, result any, panicked bool, herr error) terminal {
	switch {
	case ctx.Err() != nil:
		return terminal{cancel: true, outcome: "cancelled"}
	case panicked:
		d, _ := contracts.Failed(CodeTaskPanic, "the task handler panicked", false)
		return terminal{draft: d, outcome: "failed"}
	case herr == nil:
		d, err := contracts.Completed(result)
		if err != nil {
			d, _ = contracts.Failed(CodeInvalidResult, "the task result could not be encoded as JSON", false)
			return terminal{draft: d, outcome: "failed"}
		}
		return terminal{draft: d, outcome: "completed"}
	}
	return terminal{draft: failureOf(herr), outcome: "failed"}
}

// taskErrorDetails carries an *orchestration.TaskError from a step to the
// workflow inside a Temporal application error (its Cause is never sent).
type taskErrorDetails struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// failureOf is TASK_FAILED for a handler's error:
//
//   - an *orchestration.TaskError, returned by the handler or by a step,
//     keeps its code, message and retryable flag;
//   - a step that timed out on its last attempt is TASK_TIMEOUT, retryable
//     (a new task may finish in time);
//   - a step that Temporal gave up on after its attempts (or its
//     schedule-to-close time) ran out is TASK_FAILED, retryable, since the
//     failure was one worth retrying;
//   - a step that failed with an error marked non-retryable, and any other
//     error, is TASK_FAILED, not retryable.
//
// Messages are fixed texts: an error's own text never reaches clients.
func failureOf(err error) contracts.EventDraft {
	var te *orchestration.TaskError
	if errors.As(err, &te) && te.Code != "" {
		return failed(te.Code, te.Message, te.Retryable)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == errTypeTask {
		var d taskErrorDetails
		if app.Details(&d) == nil && d.Code != "" {
			return failed(d.Code, d.Message, d.Retryable)
		}
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		msg := "a step of the task timed out"
		switch timeout.TimeoutType() {
		case enums.TIMEOUT_TYPE_START_TO_CLOSE:
			msg = "a step of the task ran past its start-to-close timeout on its last attempt"
		case enums.TIMEOUT_TYPE_HEARTBEAT:
			msg = "a step of the task stopped heartbeating on its last attempt"
		case enums.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
			msg = "a step of the task ran past its schedule-to-close timeout"
		}
		return failed(CodeTaskTimeout, msg, true)
	}
	var act *temporal.ActivityError
	if errors.As(err, &act) {
		switch act.RetryState() {
		case enums.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED, enums.RETRY_STATE_TIMEOUT:
			return failed(CodeTaskFailed, "a step of the task failed on every attempt", true)
		}
		return failed(CodeTaskFailed, "a step of the task failed", false)
	}
	return failed(CodeTaskFailed, "the task failed", false)
}

func failed(code, message string, retryable bool) contracts.EventDraft {
	if message == "" {
		message = "the task failed"
	}
	d, err := contracts.Failed(code, message, retryable)
	if err != nil {
		d, _ = contracts.Failed(CodeTaskFailed, "the task failed", retryable)
	}
	return d
}
