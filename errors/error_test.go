package bridgeerr_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

func TestCodeStatuses(t *testing.T) {
	t.Parallel()
	want := map[bridgeerr.Code]int{
		bridgeerr.CodeAuthentication:      401,
		bridgeerr.CodeTaskNotFound:        404,
		bridgeerr.CodeTaskOwnership:       403,
		bridgeerr.CodeTaskConflict:        409,
		bridgeerr.CodeIdempotencyConflict: 409,
		bridgeerr.CodeTaskAlreadyTerminal: 409,
		bridgeerr.CodeInvalidTaskState:    409,
		bridgeerr.CodeInvalidRequest:      400,
		bridgeerr.CodeRequestValidation:   422,
		bridgeerr.CodeUploadValidation:    400,
		bridgeerr.CodeTaskSubmission:      503,
		bridgeerr.CodeInternal:            500,
		bridgeerr.CodeTooManyStreams:      429,
		bridgeerr.Code("SOMETHING_NEW"):   500,
	}
	for code, status := range want {
		assert.Equal(t, status, code.HTTPStatus(), code)
	}
	tooBig := bridgeerr.New(bridgeerr.CodeUploadValidation, "upload exceeds 10 MiB").WithStatus(http.StatusRequestEntityTooLarge)
	assert.Equal(t, 413, tooBig.HTTPStatus())
}

func TestErrorsIsAsAndWrap(t *testing.T) {
	t.Parallel()
	cause := errors.New("redis: connection refused")
	err := fmt.Errorf("create: %w", bridgeerr.Wrap(bridgeerr.CodeTaskSubmission, cause, "task could not be submitted"))
	assert.ErrorIs(t, err, bridgeerr.ErrTaskSubmission, "matches the sentinel by code")
	assert.NotErrorIs(t, err, bridgeerr.ErrInternal)
	assert.ErrorIs(t, err, cause, "the cause stays reachable")
	var be *bridgeerr.Error
	require.ErrorAs(t, err, &be)
	assert.Equal(t, bridgeerr.CodeTaskSubmission, be.Code)
	assert.Equal(t, "taskbridge: TASK_SUBMISSION_ERROR: task could not be submitted: redis: connection refused", be.Error())
}

func TestFromMapsPortErrors(t *testing.T) {
	t.Parallel()
	_, cursorErr := contracts.ParseCursor("garbage")
	tests := []struct {
		err  error
		code bridgeerr.Code
	}{
		{fmt.Errorf("get: %w", contracts.ErrNotFound), bridgeerr.CodeTaskNotFound},
		{contracts.ErrTerminal, bridgeerr.CodeTaskAlreadyTerminal},
		{contracts.ErrInvalidTransition, bridgeerr.CodeInvalidTaskState},
		{cursorErr, bridgeerr.CodeInvalidRequest},
		{fmt.Errorf("x: %w", contracts.ErrInvalidFrame), bridgeerr.CodeInvalidRequest},
		{context.Canceled, bridgeerr.CodeInternal},
		{fmt.Errorf("redis: %w", context.DeadlineExceeded), bridgeerr.CodeInternal},
		{errors.New("boom"), bridgeerr.CodeInternal},
		{bridgeerr.New(bridgeerr.CodeIdempotencyConflict, "x"), bridgeerr.CodeIdempotencyConflict},
	}
	for _, tt := range tests {
		got := bridgeerr.From(tt.err)
		require.NotNil(t, got)
		assert.Equal(t, tt.code, got.Code, "%v", tt.err)
		assert.ErrorIs(t, got, tt.err, "From keeps the original reachable")
	}
	assert.Nil(t, bridgeerr.From(nil))
}

func TestEnvelopeNeverLeaksInternalCauses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 16, 0, 0, 0, time.FixedZone("", 3600))
	internal := bridgeerr.From(errors.New("dial tcp 10.0.0.7:6379: password=hunter2"))
	internal.Details = map[string]any{"dsn": "secret"}
	env := internal.Envelope(now)
	assert.Equal(t, bridgeerr.CodeInternal, env.Code)
	assert.Equal(t, "internal error", env.Message)
	assert.Empty(t, env.Details)
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "hunter2")
	assert.NotContains(t, string(raw), "secret")
	assert.JSONEq(t, `{"code":"INTERNAL_ERROR","message":"internal error","details":{},"timestamp":"2026-11-26T15:00:00.000Z"}`, string(raw))

	notFound := bridgeerr.New(bridgeerr.CodeTaskNotFound, "task not found").WithDetails(map[string]any{"taskId": "t1"})
	raw, err = json.Marshal(notFound.Envelope(now))
	require.NoError(t, err)
	assert.JSONEq(t, `{"code":"TASK_NOT_FOUND","message":"task not found","details":{"taskId":"t1"},"timestamp":"2026-11-26T15:00:00.000Z"}`, string(raw))

	sub := bridgeerr.Wrap(bridgeerr.CodeTaskSubmission, errors.New("queue full at worker-3"), "task could not be submitted")
	env = sub.Envelope(now)
	assert.Equal(t, bridgeerr.CodeTaskSubmission, env.Code, "503s with a stable code keep it")
	assert.NotContains(t, env.Message, "worker-3")
}

func ExampleError_Envelope() {
	err := bridgeerr.New(bridgeerr.CodeTaskNotFound, "task not found")
	env := err.Envelope(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	raw, _ := json.Marshal(env)
	fmt.Println(err.HTTPStatus(), string(raw))
	// Output:
	// 404 {"code":"TASK_NOT_FOUND","message":"task not found","details":{},"timestamp":"2026-01-01T00:00:00.000Z"}
}

func TestFromLimitError(t *testing.T) {
	t.Parallel()
	quota := fmt.Errorf("store: %w", &contracts.LimitError{Err: contracts.ErrQuotaExceeded, Limit: "MaxTasksPerOwner", Max: 3, RetryAfter: 1500 * time.Millisecond})
	be := bridgeerr.From(quota)
	assert.Equal(t, bridgeerr.CodeQuotaExceeded, be.Code)
	assert.Equal(t, http.StatusTooManyRequests, be.HTTPStatus())
	assert.Equal(t, map[string]any{"limit": "MaxTasksPerOwner", "max": int64(3), "retryAfterSeconds": int64(2)}, be.Details)
	assert.ErrorIs(t, be, contracts.ErrQuotaExceeded)

	full := &contracts.LimitError{Err: contracts.ErrStoreFull, Limit: "MaxBytes", Max: 10}
	be = bridgeerr.From(full)
	assert.Equal(t, bridgeerr.CodeStorageFull, be.Code)
	assert.Equal(t, http.StatusInsufficientStorage, be.HTTPStatus())
	assert.NotContains(t, be.Details, "retryAfterSeconds")
}
