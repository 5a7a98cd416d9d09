package redisstore_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
	"github.com/taskbridge/taskbridge-fiber/stores/storetest"
)

func TestTicketStoreConformance(t *testing.T) {
	redisAddr(t)
	storetest.RunTicketStore(t, func(t *testing.T, clock func() time.Time) contracts.TicketStore {
		c := newClient(t)
		s, err := redisstore.NewTicketStore(c, redisstore.Options{KeyPrefix: uniquePrefix(t, c), Clock: clock})
		require.NoError(t, err)
		return s
	})
}

// TestTicketIssuedOnOneInstanceTakenOnAnother: two stores on their own
// connections, sharing the prefix, as two instances do.
func TestTicketIssuedOnOneInstanceTakenOnAnother(t *testing.T) {
	t.Parallel()
	a, b := newClient(t), newClient(t)
	prefix := uniquePrefix(t, a)
	sa, err := redisstore.NewTicketStore(a, redisstore.Options{KeyPrefix: prefix})
	require.NoError(t, err)
	sb, err := redisstore.NewTicketStore(b, redisstore.Options{KeyPrefix: prefix})
	require.NoError(t, err)
	ctx := context.Background()
	want := contracts.StreamTicket{TaskID: "task", Auth: contracts.AuthContext{Subject: "alice"}, ExpiresAt: time.Now().Add(time.Minute)}
	require.NoError(t, sa.Put(ctx, "k", want))
	ttl, err := a.PTTL(ctx, prefix+"ticket:k").Result()
	require.NoError(t, err)
	assert.InDelta(t, time.Minute.Seconds(), ttl.Seconds(), 5, "the key expires with the ticket")
	got, err := sb.Take(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Auth.Subject)
	_, err = sa.Take(ctx, "k")
	assert.ErrorIs(t, err, contracts.ErrNotFound)

	_, err = redisstore.NewTicketStore(nil, redisstore.Options{})
	assert.Error(t, err)
}

// TestStreamTicketAcrossInstances: a ticket issued by instance A opens an
// SSE stream on instance B, once.
func TestStreamTicketAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	prefix := uniquePrefix(t, newClient(t))
	steps := newStepper()
	a := startNode(t, "A", nodeConfig{client: newClient(t), prefix: prefix, steps: steps, tickets: true})
	b := startNode(t, "B", nodeConfig{client: newClient(t), prefix: prefix, steps: steps, tickets: true})
	taskID := createRunning(t, ctx, a, steps)
	steps.finish(t, ctx, taskID)

	status, body := a.do(http.MethodPost, "/api/v1/tasks/"+taskID+"/stream-ticket", "")
	require.Equal(t, http.StatusCreated, status, string(body))
	var issued struct{ Ticket string }
	require.NoError(t, json.Unmarshal(body, &issued))

	stream := func(n *node) (int, string) {
		// No Authorization header: the ticket is the credential.
		resp, err := n.http.Get("http://" + n.addr + "/api/v1/tasks/" + taskID + "/events/stream?ticket=" + url.QueryEscape(issued.Ticket))
		require.NoError(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(data)
	}
	status, text := stream(b)
	require.Equal(t, http.StatusOK, status, text)
	assert.Contains(t, text, `"type":"TASK_STARTED"`)
	assert.Contains(t, text, `"type":"TASK_COMPLETED"`, "the stream replays to the end, then ends")
	status, text = stream(a)
	assert.Equal(t, http.StatusUnauthorized, status, "spent on B, refused on A: %s", text)
	keys, err := newClient(t).Keys(ctx, prefix+"ticket:*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys, "a taken ticket leaves nothing behind")
}
