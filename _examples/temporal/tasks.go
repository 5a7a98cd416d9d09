package main

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// The demo task types, as Temporal workflows. They match the quickstart's
// (same names, inputs and results) plus demo.deadline, which shows a step
// timeout.
const (
	// TypeProgress runs input.steps (0..1000, default 3) steps of
	// input.delayMs (0..60000, default 100) each, as heartbeating
	// activities, with a TASK_PROGRESS after each; completes with
	// {"steps": n}.
	TypeProgress = "demo.progress"
	// TypeFail emits one TASK_PROGRESS and fails with DEMO_FAILURE.
	TypeFail = "demo.fail"
	// TypeApproval suspends for "approve" or "reject" (for input.timeoutMs,
	// 0..86400000, default 0: no deadline) and completes with
	// {"decision": action}.
	TypeApproval = "demo.approval"
	// TypeSleep emits TASK_PROGRESS below 100 every input.delayMs
	// (1..60000, default 1000) of durable workflow time until cancelled.
	TypeSleep = "demo.sleep"
	// TypeDeadline runs one step of input.workMs (0..60000, default 5000)
	// under a start-to-close timeout of deadlineStepTimeout and two
	// attempts: longer work ends the task TASK_FAILED with code
	// TASK_TIMEOUT.
	TypeDeadline = "demo.deadline"
)

// stepWork is the step the demo types run: it waits delayMs (or until its
// context ends) and reports nothing itself.
const stepWork = "demo.work"

// deadlineStepTimeout is demo.deadline's start-to-close timeout.
const deadlineStepTimeout = time.Second

// FailureCode is demo.fail's TASK_FAILED code.
const FailureCode = "DEMO_FAILURE"

// taskTypes are the demo task types, sorted; the bridge accepts these.
var taskTypes = []string{TypeApproval, TypeDeadline, TypeFail, TypeProgress, TypeSleep}

// register registers the demo handlers and their step on w.
func register(w *tbtemporal.Worker) {
	// Steps of demo.progress heartbeat every second: a worker killed in a
	// step is noticed within 3 s and the step runs again elsewhere.
	w.Handle(TypeProgress, runProgress, tbtemporal.TypeOptions{
		StartToCloseTimeout: time.Minute + 10*time.Second, HeartbeatTimeout: 3 * time.Second,
		Retry: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 5 * time.Second, MaximumAttempts: 5},
	})
	w.Handle(TypeFail, runFail)
	w.Handle(TypeApproval, runApproval)
	w.Handle(TypeSleep, runSleep)
	w.Handle(TypeDeadline, runDeadline, tbtemporal.TypeOptions{
		StartToCloseTimeout: deadlineStepTimeout,
		Retry:               &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumAttempts: 2},
	})
	w.RegisterStep(work, stepWork)
}

type progressInput struct {
	Steps   *int `json:"steps"`
	DelayMs *int `json:"delayMs"`
}

type delayInput struct {
	DelayMs *int `json:"delayMs"`
}

type approvalInput struct {
	TimeoutMs *int `json:"timeoutMs"`
}

type deadlineInput struct {
	WorkMs *int `json:"workMs"`
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// runProgress runs steps work steps, each followed by TASK_PROGRESS.
func runProgress(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	var in progressInput
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	steps, delay := intOr(in.Steps, 3), intOr(in.DelayMs, 100)
	for i := 1; i <= steps; i++ {
		if err := task.ExecuteStep(ctx, stepWork, delay).Get(ctx, nil); err != nil {
			return nil, err
		}
		pct := float64(i) * 100 / float64(steps)
		if err := task.Progress(ctx, pct, "working", fmt.Sprintf("step %d of %d", i, steps)); err != nil {
			return nil, err
		}
	}
	return map[string]int{"steps": steps}, nil
}

// runFail emits one TASK_PROGRESS and fails with DEMO_FAILURE.
func runFail(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	if err := task.Progress(ctx, 50, "working", "about to fail"); err != nil {
		return nil, err
	}
	return nil, &orchestration.TaskError{Code: FailureCode, Message: "the demo task failed on purpose"}
}

// runApproval suspends for approve or reject and completes with the
// decision.
func runApproval(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	var in approvalInput
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	act, err := task.Suspend(ctx, orchestration.SuspendSpec{
		Kind:           contracts.KindUserActionRequired,
		ReasonCode:     "approval_required",
		AllowedActions: []string{"approve", "reject"},
		Timeout:        time.Duration(intOr(in.TimeoutMs, 0)) * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"decision": act.ActionType}, nil
}

// runSleep emits TASK_PROGRESS below 100 every delayMs until cancelled.
func runSleep(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	var in delayInput
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	delay := time.Duration(intOr(in.DelayMs, 1000)) * time.Millisecond
	for n := 1; ; n++ {
		if err := workflow.Sleep(ctx, delay); err != nil {
			return nil, err
		}
		if err := task.Progress(ctx, float64(min(n, 99)), "sleeping", ""); err != nil {
			return nil, err
		}
	}
}

// runDeadline runs one step of workMs under demo.deadline's timeout.
func runDeadline(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	var in deadlineInput
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	if err := task.ExecuteStep(ctx, stepWork, intOr(in.WorkMs, 5000)).Get(ctx, nil); err != nil {
		return nil, err
	}
	return map[string]string{"status": "in time"}, nil
}

// work is the demo step: it waits delayMs, or until its context ends (the
// workflow was cancelled, the attempt timed out, the worker stops).
func work(ctx context.Context, delayMs int) error {
	t := time.NewTimer(time.Duration(delayMs) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// validateInput is the bridge's fiberbridge.Config.CreatePreprocessor: it
// rejects a demo task's invalid input with 400 INVALID_REQUEST (details
// name the field) before a workflow starts.
func validateInput(_ *fiber.Ctx, cmd *contracts.CreateTaskCommand) error {
	switch cmd.TaskType {
	case TypeProgress:
		var in progressInput
		if err := demo.DecodeInput(cmd.Input, &in); err != nil {
			return err
		}
		if err := inRange("steps", in.Steps, 0, 1000); err != nil {
			return err
		}
		return inRange("delayMs", in.DelayMs, 0, 60000)
	case TypeSleep:
		var in delayInput
		if err := demo.DecodeInput(cmd.Input, &in); err != nil {
			return err
		}
		return inRange("delayMs", in.DelayMs, 1, 60000)
	case TypeApproval:
		var in approvalInput
		if err := demo.DecodeInput(cmd.Input, &in); err != nil {
			return err
		}
		return inRange("timeoutMs", in.TimeoutMs, 0, 86400000)
	case TypeDeadline:
		var in deadlineInput
		if err := demo.DecodeInput(cmd.Input, &in); err != nil {
			return err
		}
		return inRange("workMs", in.WorkMs, 0, 60000)
	case TypeFail:
		return demo.DecodeInput(cmd.Input, &struct{}{})
	}
	return nil
}

func inRange(name string, v *int, lo, hi int) error {
	if v == nil || (*v >= lo && *v <= hi) {
		return nil
	}
	return bridgeerr.New(bridgeerr.CodeInvalidRequest, fmt.Sprintf("input.%s must be from %d to %d", name, lo, hi)).
		WithDetails(map[string]any{"field": "input." + name, "minimum": lo, "maximum": hi})
}
