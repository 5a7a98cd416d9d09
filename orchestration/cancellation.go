package orchestration

import (
	"context"
	"errors"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// CancellationService records cancellation requests and forwards them to
// the executor. It is safe for concurrent use.
type CancellationService struct{ d *deps }

// Cancel asks for cmd.TaskID to be cancelled. A terminal task answers
// ALREADY_TERMINAL without touching the executor (also when it turns
// terminal between the check and the request); otherwise the registry
// records the request and reason, the executor is asked to cancel, and the
// answer is CANCELLATION_REQUESTED. Cancellation is cooperative: the task
// ends with TASK_CANCELLED when its runner stops. Foreign and missing tasks
// are TASK_NOT_FOUND.
func (s *CancellationService) Cancel(ctx context.Context, cmd contracts.CancelTaskCommand) (contracts.CancelResult, error) {
	d := s.d
	task, err := d.authorize(ctx, cmd.Auth, cmd.TaskID, accessCancel)
	if err != nil {
		return contracts.CancelResult{}, err
	}
	entry := observe.Entry{TaskID: task.TaskID, UserID: cmd.Auth.Subject, Transport: observe.TransportInternal}
	terminal := contracts.CancelResult{TaskID: task.TaskID, Status: contracts.CancelAlreadyTerminal}
	if task.Status.IsTerminal() {
		entry.Outcome = "already_terminal"
		d.log.Info("task.cancel.skipped_terminal", entry)
		return terminal, nil
	}
	updated, err := d.registry.RequestCancellation(ctx, task.TaskID, cmd.Reason)
	if err != nil {
		if errors.Is(err, contracts.ErrTerminal) {
			entry.Outcome = "already_terminal"
			d.log.Info("task.cancel.skipped_terminal", entry)
			return terminal, nil
		}
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.cancel.failed", entry)
		return contracts.CancelResult{}, internal(err)
	}
	if err := d.executor.Cancel(ctx, updated); err != nil {
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.cancel.executor_failed", entry)
		return contracts.CancelResult{}, internal(err)
	}
	d.metrics.IncCounter(observe.MetricCancels, 1)
	entry.Outcome = "requested"
	d.log.Info("task.cancel.requested", entry)
	return contracts.CancelResult{TaskID: task.TaskID, Status: contracts.CancelRequested}, nil
}
