package redisstore_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// TestRetryAtQuotaAnswersItsTask: on the Redis stores, behind a real
// listener, alice holds her two active tasks (SubjectLimits.MaxActiveTasks
// 2). A retry of her first create, whose answer she may have lost, answers
// 200 with that task, deduplicated, instead of 429; the same
// clientRequestId with another input is 409 IDEMPOTENCY_CONFLICT; a new
// request is 429 QUOTA_EXCEEDED and leaves nothing behind: its
// idempotency key names no task and her listing holds the two tasks only.
func TestRetryAtQuotaAnswersItsTask(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := newClient(t)
	steps := newStepper()
	n := startNode(t, "A", nodeConfig{client: client, prefix: uniquePrefix(t, client), steps: steps,
		limits: orchestration.SubjectLimits{MaxActiveTasks: 2}})
	create := func(request, input string) (int, []byte) {
		return n.do(http.MethodPost, "/api/v1/tasks",
			`{"clientRequestId":"`+request+`","taskType":"`+stepsType+`","input":`+input+`}`)
	}
	var ids []string
	for _, request := range []string{"r1", "r2"} {
		status, body := create(request, `{}`)
		require.Equal(t, http.StatusCreated, status, string(body))
		var created contracts.TaskCreated
		require.NoError(t, json.Unmarshal(body, &created))
		steps.awaitRunning(t, ctx, created.TaskID)
		ids = append(ids, created.TaskID)
	}

	status, body := create("r1", `{}`)
	require.Equal(t, http.StatusOK, status, "a retry at the quota answers its task: %s", body)
	var again contracts.TaskCreated
	require.NoError(t, json.Unmarshal(body, &again))
	assert.Equal(t, ids[0], again.TaskID)
	assert.True(t, again.Deduplicated)
	assert.Equal(t, contracts.StatusRunning, again.Status)

	status, body = create("r1", `{"other":true}`)
	assert.Equal(t, http.StatusConflict, status, string(body))
	assert.Contains(t, string(body), string(bridgeerr.CodeIdempotencyConflict))

	status, body = create("r3", `{}`)
	require.Equal(t, http.StatusTooManyRequests, status, string(body))
	assert.Contains(t, string(body), string(bridgeerr.CodeQuotaExceeded))
	_, err := n.stores.Tasks.(contracts.TaskFinder).FindByClientRequestID(ctx, owner, "r3")
	require.ErrorIs(t, err, contracts.ErrNotFound, "the refused create stored nothing")
	status, body = n.do(http.MethodGet, "/api/v1/tasks", "")
	require.Equal(t, http.StatusOK, status, string(body))
	var list struct {
		Tasks []struct {
			TaskID string `json:"taskId"`
		} `json:"tasks"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	assert.Len(t, list.Tasks, 2, "alice's listing: %s", body)
}
