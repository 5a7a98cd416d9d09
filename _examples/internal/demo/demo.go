package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// The demo task types.
const (
	// TypeProgress emits input.steps (0..1000, default 3) TASK_PROGRESS
	// events input.delayMs (0..60000, default 100) apart and completes with
	// {"steps": n}.
	TypeProgress = "demo.progress"
	// TypeFail emits one TASK_PROGRESS and fails with DEMO_FAILURE. No input.
	TypeFail = "demo.fail"
	// TypeApproval suspends for "approve" or "reject" and completes with
	// {"decision": action}. No input.
	TypeApproval = "demo.approval"
	// TypeSleep emits TASK_PROGRESS below 100 every input.delayMs (1..60000,
	// default 1000) until it is cancelled.
	TypeSleep = "demo.sleep"
	// TypeRepeatable is demo.progress marked safe to run again: an
	// executor that registers it with RegisterRepeatable runs such a task
	// again on a live instance when the instance running it dies.
	TypeRepeatable = "demo.repeatable"
)

// FailureCode is the code of demo.fail's TASK_FAILED event.
const FailureCode = "DEMO_FAILURE"

// progressInput is demo.progress's input.
type progressInput struct {
	Steps   *int `json:"steps"`
	DelayMs *int `json:"delayMs"`
}

// sleepInput is demo.sleep's input.
type sleepInput struct {
	DelayMs *int `json:"delayMs"`
}

// emptyInput is the input of demo.fail and demo.approval: no fields.
type emptyInput struct{}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// Handlers is where Register puts the demo handlers: an
// *orchestration.Executor, or a wrapper of one that adds behaviour around
// each handler.
type Handlers interface {
	Handle(taskType string, h orchestration.Handler)
}

// Register registers the four demo handlers on x. Call it once per
// executor, before the executor receives tasks.
func Register(x Handlers) {
	x.Handle(TypeProgress, runProgress)
	x.Handle(TypeFail, runFail)
	x.Handle(TypeApproval, runApproval)
	x.Handle(TypeSleep, runSleep)
}

// RegisterRepeatable registers demo.repeatable (demo.progress's handler)
// on x as safe to run again, up to attempts attempts in all
// (orchestration.Executor.HandleRepeatable).
func RegisterRepeatable(x interface {
	HandleRepeatable(taskType string, h orchestration.Handler, attempts int)
}, attempts int) {
	x.HandleRepeatable(TypeRepeatable, runProgress, attempts)
}

// runProgress emits steps TASK_PROGRESS events rising to 100, delayMs
// apart, and completes with {steps}.
func runProgress(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	var in progressInput
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	steps, delay := intOr(in.Steps, 3), time.Duration(intOr(in.DelayMs, 100))*time.Millisecond
	for i := 1; i <= steps; i++ {
		if err := sleep(ctx, delay); err != nil {
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
func runFail(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	if err := task.Progress(ctx, 50, "working", "about to fail"); err != nil {
		return nil, err
	}
	return nil, &orchestration.TaskError{Code: FailureCode, Message: "the demo task failed on purpose", Retryable: false}
}

// runApproval suspends for approve or reject and completes with
// {decision}.
func runApproval(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	act, err := task.Suspend(ctx, orchestration.SuspendSpec{
		Kind:           contracts.KindUserActionRequired,
		ReasonCode:     "approval_required",
		AllowedActions: []string{"approve", "reject"},
		SchemaVersion:  1,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"decision": act.ActionType}, nil
}

// runSleep emits TASK_PROGRESS below 100 every delayMs until it is
// cancelled; the executor then ends it with TASK_CANCELLED.
func runSleep(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	var in sleepInput
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	delay := time.Duration(intOr(in.DelayMs, 1000)) * time.Millisecond
	for n := 1; ; n++ {
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		if err := task.Progress(ctx, float64(min(n, 99)), "sleeping", ""); err != nil {
			return nil, err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ValidateInput is a fiberbridge.Config.CreatePreprocessor: it rejects a
// demo task's invalid input with 400 INVALID_REQUEST (details.field names
// the field) before the task exists. Other task types pass through; the
// creation service answers unknown ones with 400 listing the known types.
func ValidateInput(_ *fiber.Ctx, cmd *contracts.CreateTaskCommand) error {
	switch cmd.TaskType {
	case TypeProgress, TypeRepeatable:
		var in progressInput
		if err := DecodeInput(cmd.Input, &in); err != nil {
			return err
		}
		if err := inRange("steps", in.Steps, 0, 1000); err != nil {
			return err
		}
		return inRange("delayMs", in.DelayMs, 0, 60000)
	case TypeSleep:
		var in sleepInput
		if err := DecodeInput(cmd.Input, &in); err != nil {
			return err
		}
		return inRange("delayMs", in.DelayMs, 1, 60000)
	case TypeFail, TypeApproval:
		return DecodeInput(cmd.Input, &emptyInput{})
	}
	return nil
}

// DecodeInput strictly decodes a task input (for validators of other task
// types, such as the Temporal example's): unknown fields and wrong
// types are 400 INVALID_REQUEST naming the field.
func DecodeInput(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	field, msg := "input", "input is not valid"
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		field = "input." + typeErr.Field
		msg = field + " has the wrong type"
	} else if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field = "input." + strings.Trim(name, `"`)
		msg = field + " is not a known field"
	}
	return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, msg).WithDetails(map[string]any{"field": field})
}

func inRange(name string, v *int, lo, hi int) error {
	if v == nil || (*v >= lo && *v <= hi) {
		return nil
	}
	return bridgeerr.New(bridgeerr.CodeInvalidRequest, fmt.Sprintf("input.%s must be from %d to %d", name, lo, hi)).
		WithDetails(map[string]any{"field": "input." + name, "minimum": lo, "maximum": hi})
}

// Auth is the examples' fiberbridge.Config.AuthResolver: "Authorization:
// Bearer <token>" or, for EventSource and browser WebSockets which cannot
// set headers, an access_token query parameter. The subject is the token
// itself (a demo, not a security scheme); no token answers 401
// AUTHENTICATION_ERROR.
func Auth(c *fiber.Ctx) (contracts.AuthContext, error) {
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		token = c.Query("access_token")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication,
			"send Authorization: Bearer <token> or ?access_token=<token>")
	}
	return contracts.AuthContext{Subject: strings.Clone(token)}, nil
}
