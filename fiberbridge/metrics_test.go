package fiberbridge_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
)

// streamEnds is a TransportDiagnosticsSink that reports every stream end:
// the hub calls OnDisconnect after it has stopped counting the stream in
// taskbridge_streams_active, so a test that has seen n ends knows the gauge
// is final.
type streamEnds struct {
	observe.NopDiagnostics
	ended chan observe.Transport
}

func newStreamEnds() *streamEnds { return &streamEnds{ended: make(chan observe.Transport, 64)} }

func (s *streamEnds) OnDisconnect(tr observe.Transport, _, _ string) { s.ended <- tr }

// await waits for want stream ends per transport.
func (s *streamEnds) await(t testing.TB, want map[observe.Transport]int) {
	t.Helper()
	got := map[observe.Transport]int{}
	deadline := time.After(wait)
	for !mapsEqual(got, want) {
		select {
		case tr := <-s.ended:
			got[tr]++
		case <-deadline:
			t.Fatalf("stream ends: got %v, want %v", got, want)
		}
	}
}

func mapsEqual(a, b map[observe.Transport]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// scrape is one parsed GET /metrics.
type scrape map[string]*dto.MetricFamily

// scrapeMetrics GETs path over the real listener and parses the Prometheus
// text format.
func (h *harness) scrapeMetrics(path string) scrape {
	h.t.Helper()
	resp, err := h.client.Get(h.base + path)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	require.True(h.t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(h.t, err)
	return families
}

// value returns the sample of name whose labels include labels: a
// counter's or gauge's value, a histogram's count. ok is false when there
// is no such series.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	mf := s[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsScrapeAfterFlow runs a scripted flow (create, dedup, poll,
// action, SSE and WebSocket streams to their terminal events, cancel) on a
// real listener with the Prometheus sink, scrapes /metrics over HTTP and
// checks every counter, the request histogram and the streams-active
// gauge, which is back at 0 for both stream transports.
func TestMetricsScrapeAfterFlow(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	ends := newStreamEnds()
	h := startHarnessWith(t, func(cfg *fiberbridge.Config) {
		cfg.Metrics = prom.MustNew(reg)
		cfg.Diagnostics = ends
	}, func(app *fiber.App) {
		app.Get("/metrics", fiberbridge.MetricsHandler(prom.Handler(reg)))
	})

	// create and dedup.
	body := map[string]any{"clientRequestId": "steps-1", "taskType": "test.steps", "input": map[string]any{"steps": 3}}
	r := h.postJSON("/api/v1/tasks", "alice", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	stepsID := createdID(t, r.body)
	r = h.postJSON("/api/v1/tasks", "alice", body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	// SSE from the start to the terminal event.
	s, _ := h.openSSE("alice", stepsID, "", nil)
	require.NotNil(t, s)
	all := s.readUntilEnd(wait)
	require.Len(t, all, 5) // STARTED, 3 x PROGRESS, COMPLETED

	// WebSocket replay after the first event, to the terminal event.
	ws, _ := h.dialWS("alice", false)
	require.NotNil(t, ws)
	ws.subscribe(stepsID, strPtr(all[0].EventID.String()))
	require.NotNil(t, ws.read(wait).frame.Confirmation)
	require.Len(t, ws.expectClose(websocket.CloseNormalClosure, wait), 4)

	// Two polls: from the start, and after a cursor (a replay).
	res, pr := h.poll("alice", stepsID, "")
	require.Equal(t, http.StatusOK, pr.status)
	require.Len(t, res.Events, 5)
	res, pr = h.poll("alice", stepsID, "?afterEventId="+all[2].EventID.String())
	require.Equal(t, http.StatusOK, pr.status)
	require.Len(t, res.Events, 2)

	// An action over an SSE stream: accepted, then deduplicated.
	approvalID := h.create("alice", "test.approval", nil)
	s2, _ := h.openSSE("alice", approvalID, "", nil)
	require.NotNil(t, s2)
	var approval []contracts.TaskEvent
	for {
		ev := s2.nextEvent(wait)
		approval = append(approval, ev)
		if ev.Type == contracts.EventSuspended {
			break
		}
	}
	p, err := contracts.DecodePayload(&approval[len(approval)-1])
	require.NoError(t, err)
	action := map[string]any{"clientActionId": "a-1", "suspendId": p.(contracts.SuspendedPayload).SuspendID, "actionType": "approve"}
	r = h.postJSON("/api/v1/tasks/"+approvalID+"/actions", "alice", action)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r = h.postJSON("/api/v1/tasks/"+approvalID+"/actions", "alice", action)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	approval = append(approval, s2.readUntilEnd(wait)...)
	require.True(t, isTerminal(approval))

	// Cancel a running task watched over WebSocket.
	blockID := h.create("alice", "test.block", nil)
	ws2, _ := h.dialWS("alice", false)
	require.NotNil(t, ws2)
	ws2.subscribe(blockID, nil)
	require.NotNil(t, ws2.read(wait).frame.Confirmation)
	require.Equal(t, contracts.EventStarted, ws2.nextEvent(wait).Type)
	r = h.request(http.MethodPost, "/api/v1/tasks/"+blockID+"/cancel", "alice", "", nil)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	cancelled := ws2.expectClose(websocket.CloseNormalClosure, wait)
	require.Len(t, cancelled, 1)
	require.Equal(t, contracts.EventCancelled, cancelled[0].Type)

	ends.await(t, map[observe.Transport]int{observe.TransportSSE: 2, observe.TransportWS: 2})
	m := h.scrapeMetrics("/metrics")

	const tr = observe.TagTransport
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{observe.MetricTaskStarts, nil, 3},
		{observe.MetricDuplicates, nil, 1},
		{observe.MetricCancels, nil, 1},
		{observe.MetricActions, []string{observe.TagStatus, string(contracts.ActionStatusAccepted)}, 1},
		{observe.MetricActions, []string{observe.TagStatus, string(contracts.ActionStatusDeduplicated)}, 1},
		{observe.MetricFallbacks, []string{tr, "http"}, 2},
		{observe.MetricReplays, []string{tr, "http"}, 1},
		{observe.MetricReplays, []string{tr, "ws"}, 1},
		{observe.MetricStoreReads, []string{observe.TagReason, "poll"}, 2},
		{observe.MetricEventsDelivered, []string{tr, "sse"}, float64(len(all) + len(approval))},
		{observe.MetricEventsDelivered, []string{tr, "ws"}, float64(len(all) - 1 + 2)}, // + STARTED, CANCELLED
		{observe.MetricStreamsActive, []string{tr, "sse"}, 0},
		{observe.MetricStreamsActive, []string{tr, "ws"}, 0},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks", observe.TagStatus, "201"}, 3},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks", observe.TagStatus, "200"}, 1},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks/:taskId/events", observe.TagStatus, "200"}, 2},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks/:taskId/events/stream", observe.TagStatus, "200"}, 2},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks/:taskId/actions", observe.TagStatus, "202"}, 1},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks/:taskId/actions", observe.TagStatus, "200"}, 1},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks/:taskId/cancel", observe.TagStatus, "202"}, 1},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks/ws", observe.TagStatus, "101"}, 2},
	} {
		t.Run(tc.name+"{"+strings.Join(tc.labels, "=")+"}", func(t *testing.T) {
			got, ok := m.value(tc.name, tc.labels...)
			require.True(t, ok, "no series %s %v", tc.name, tc.labels)
			assert.Equal(t, tc.want, got)
		})
	}
	_, hasFailures := m.value(observe.MetricTaskFailures)
	assert.False(t, hasFailures, "no task failed")
	latency, ok := m.value(observe.MetricDeliveryLatency, tr, "sse")
	require.True(t, ok)
	assert.Positive(t, latency, "delivery latency observed per batch")
	_, scraped := m.value(observe.MetricHTTPRequestSeconds, observe.TagRoute, "/metrics")
	assert.False(t, scraped, "the metrics route is not a bridge route")
}

// TestMetricsHandlerNotMountedByDefault: Register does not expose /metrics.
func TestMetricsHandlerNotMountedByDefault(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) { cfg.Metrics = prom.MustNew(prometheus.NewRegistry()) })
	r := h.request(http.MethodGet, "/metrics", "", "", nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Panics(t, func() { fiberbridge.MetricsHandler(nil) })
}
