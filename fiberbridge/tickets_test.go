package fiberbridge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

type ticketAnswer struct {
	Ticket    string `json:"ticket"`
	TaskID    string `json:"taskId"`
	ExpiresAt string `json:"expiresAt"`
}

// issueTicket asks for a ticket and returns the answer.
func (h *harness) issueTicket(token, taskID string) (ticketAnswer, response) {
	h.t.Helper()
	r := h.request(http.MethodPost, "/api/v1/tasks/"+taskID+"/stream-ticket", token, "", nil)
	var a ticketAnswer
	if r.status == http.StatusCreated {
		dec := json.NewDecoder(strings.NewReader(string(r.body)))
		dec.DisallowUnknownFields()
		require.NoError(h.t, dec.Decode(&a))
	}
	return a, r
}

// ticketHarness is a bridge with tickets on a memory ticket store whose
// clock the test moves; logs go to the returned observer (Debug).
func ticketHarness(t *testing.T) (*harness, *atomic.Int64, *observer.ObservedLogs) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	core, logs := observer.New(zapcore.DebugLevel)
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.StreamTickets = fiberbridge.StreamTickets{Store: memstore.NewTicketStore(memstore.Options{Clock: clock})}
		cfg.Logger = zap.New(core)
	})
	return h, &now, logs
}

func TestStreamTicketRouteIsOptIn(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.steps", map[string]int{"steps": 1})
	_, r := h.issueTicket("alice", id)
	assert.Equal(t, http.StatusNotFound, r.status, "no ticket route without a ticket store")
	// A ticket parameter is ignored: the AuthResolver decides.
	s, r := h.openSSE("", id, "?ticket=tbt_whatever", nil)
	assert.Nil(t, s)
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)
}

func TestStreamTicketIssue(t *testing.T) {
	t.Parallel()
	h, now, _ := ticketHarness(t)
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })

	a, r := h.issueTicket("alice", id)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	assert.Regexp(t, `^tbt_[A-Za-z0-9_-]{43}$`, a.Ticket)
	assert.Equal(t, id, a.TaskID)
	exp, err := time.Parse(time.RFC3339Nano, a.ExpiresAt)
	require.NoError(t, err)
	assert.InDelta(t, fiberbridge.DefaultStreamTicketTTL.Seconds(), exp.Sub(time.Unix(0, now.Load())).Seconds(), 2)

	b, _ := h.issueTicket("alice", id)
	assert.NotEqual(t, a.Ticket, b.Ticket)

	_, r = h.issueTicket("", id)
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)
	_, r = h.issueTicket("bob", id)
	checkEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)
	_, r = h.issueTicket("alice", "no-such-task")
	checkEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)
}

// TestStreamTicketSSE: a ticket opens one SSE stream of its task without
// credentials; it is single-use, task-scoped and expires.
func TestStreamTicketSSE(t *testing.T) {
	t.Parallel()
	h, now, logs := ticketHarness(t)
	id := h.create("alice", "test.gated", nil)
	other := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(other)) })
	var tickets []string

	a, _ := h.issueTicket("alice", id)
	tickets = append(tickets, a.Ticket)
	s, r := h.openSSE("", id, "?ticket="+url.QueryEscape(a.Ticket), nil)
	require.NotNil(t, s, "%d %s", r.status, r.body)
	require.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)

	// Used once: a second stream with it is refused.
	_, r = h.openSSE("", id, "?ticket="+url.QueryEscape(a.Ticket), nil)
	env := checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)
	assert.NotContains(t, env.Message, a.Ticket)

	// Another task's stream.
	b, _ := h.issueTicket("alice", other)
	tickets = append(tickets, b.Ticket)
	_, r = h.openSSE("", id, "?ticket="+url.QueryEscape(b.Ticket), nil)
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)

	// Expired.
	c, _ := h.issueTicket("alice", id)
	tickets = append(tickets, c.Ticket)
	now.Add(int64(fiberbridge.DefaultStreamTicketTTL + time.Second))
	_, r = h.openSSE("", id, "?ticket="+url.QueryEscape(c.Ticket), nil)
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)

	// A ticket stands in for credentials, it does not add to them: a wrong
	// ticket fails even with a valid Authorization header.
	_, r = h.openSSE("alice", id, "?ticket=tbt_forged", nil)
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)

	// The open stream goes on to the end.
	h.gates.get(id) <- "hello"
	close(h.gates.get(id))
	evs := s.readUntilEnd(wait)
	require.Len(t, evs, 2)
	assert.Equal(t, contracts.EventCompleted, evs[1].Type)

	assertNotLogged(t, logs, tickets)
}

// TestStreamTicketWebSocket: a ticket authenticates a WebSocket for its
// task; a subscribe to another task closes 1008, a spent ticket is refused
// before the upgrade.
func TestStreamTicketWebSocket(t *testing.T) {
	t.Parallel()
	h, _, logs := ticketHarness(t)
	id := h.create("alice", "test.steps", map[string]int{"steps": 3})
	other := h.create("alice", "test.steps", map[string]int{"steps": 1})
	wsURL := func(ticket string) string {
		return "ws://" + h.addr + "/api/v1/tasks/ws?ticket=" + url.QueryEscape(ticket)
	}

	a, _ := h.issueTicket("alice", id)
	c, r := h.dialWSURL(wsURL(a.Ticket), nil)
	require.NotNil(t, c, "%d %s", r.status, r.body)
	c.subscribe(id, nil)
	require.NotNil(t, c.read(wait).frame.Confirmation)
	evs := c.expectClose(websocket.CloseNormalClosure, wait)
	assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type)

	_, r = h.dialWSURL(wsURL(a.Ticket), nil)
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)

	b, _ := h.issueTicket("alice", id)
	c, _ = h.dialWSURL(wsURL(b.Ticket), nil)
	require.NotNil(t, c)
	c.subscribe(other, nil)
	res := c.read(wait)
	require.True(t, res.closed)
	assert.Equal(t, websocket.ClosePolicyViolation, res.closeCode)
	assert.Equal(t, string(bridgeerr.CodeAuthentication), res.closeText)

	assertNotLogged(t, logs, []string{a.Ticket, b.Ticket})
}

// assertNotLogged fails when any log line mentions one of the secrets.
func assertNotLogged(t *testing.T, logs *observer.ObservedLogs, secrets []string) {
	t.Helper()
	require.NotZero(t, logs.Len(), "the bridge logged")
	for _, e := range logs.All() {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			require.NotContains(t, line, s, "a ticket in the logs")
			require.NotContains(t, line, s[len("tbt_"):], "a ticket in the logs")
		}
	}
	issued := logs.FilterMessage("http.task.stream_ticket").All()
	assert.NotEmpty(t, issued, "issuing is logged (without the ticket)")
}
