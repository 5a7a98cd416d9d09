package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

func TestNewLogger(t *testing.T) {
	t.Run("JSON lines when not a terminal", func(t *testing.T) {
		var buf bytes.Buffer
		log := observe.NewLogger(newLogger(zapcore.AddSync(&buf), false, zapcore.InfoLevel))
		log.Info("http.task.create", observe.Entry{TaskID: "t1", UserID: "alice", Transport: observe.TransportHTTP, Outcome: "created"})
		log.Debug("http.task.poll", observe.Entry{TaskID: "t1"}) // below the level

		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		require.Len(t, lines, 1, buf.String())
		var line map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
		assert.Equal(t, "info", line["level"])
		assert.Equal(t, "http.task.create", line["msg"])
		assert.Equal(t, "t1", line[observe.FieldTaskID])
		assert.Equal(t, "alice", line[observe.FieldUserID])
		assert.Equal(t, "http", line[observe.FieldTransport])
		assert.Equal(t, "created", line[observe.FieldOutcome])
		assert.Contains(t, line, "ts")
	})
	t.Run("development console lines in a terminal", func(t *testing.T) {
		var buf bytes.Buffer
		log := observe.NewLogger(newLogger(zapcore.AddSync(&buf), true, zapcore.DebugLevel))
		log.Debug("http.task.poll", observe.Entry{TaskID: "t1", Transport: observe.TransportHTTP})

		out := buf.String()
		assert.False(t, json.Valid([]byte(strings.TrimSpace(out))), out)
		assert.Contains(t, out, "DEBUG")
		assert.Contains(t, out, "http.task.poll")
		assert.Contains(t, out, `"taskId": "t1"`)
	})
}

// scrapeQuickstart GETs /metrics over the real listener and parses it.
func (q *quickstart) scrape() map[string]*dto.MetricFamily {
	q.t.Helper()
	resp, err := q.client.Get("http://" + q.addr + "/metrics")
	require.NoError(q.t, err)
	defer resp.Body.Close()
	require.Equal(q.t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(q.t, err)
	return families
}

// sample returns the value (a histogram's count) of the series of name
// whose labels include labels (name, value pairs); ok is false without one.
func sample(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
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

// TestMetricsEndpoint runs a flow on the quickstart (create, dedup, SSE and
// WebSocket streams to their end, a long-poll, cancel), then scrapes
// /metrics: TaskBridge's counters next to the Go and process collectors,
// and no stream left open.
func TestMetricsEndpoint(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	q := startWith(t, zap.New(core))

	body := `{"clientRequestId":"m1","taskType":"demo.progress","input":{"steps":2,"delayMs":0}}`
	status, created := q.do(http.MethodPost, "/api/v1/tasks", "alice", "application/json", body)
	require.Equal(t, http.StatusCreated, status, string(created))
	var task contracts.TaskCreated
	require.NoError(t, json.Unmarshal(created, &task))
	status, _ = q.do(http.MethodPost, "/api/v1/tasks", "alice", "application/json", body)
	require.Equal(t, http.StatusOK, status)
	evs := q.events("alice", task.TaskID)
	require.Len(t, evs, 4) // STARTED, 2 x PROGRESS, COMPLETED

	// SSE to the end of the response.
	resp, err := q.client.Get("http://" + q.addr + "/api/v1/tasks/" + task.TaskID + "/events/stream?access_token=alice")
	require.NoError(t, err)
	sse, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ids := 0
	for _, line := range strings.Split(string(sse), "\n") {
		if strings.HasPrefix(line, "id:") {
			ids++
		}
	}
	assert.Equal(t, len(evs), ids, "one id: line per event")

	// WebSocket to the close.
	conn, wsResp, err := websocket.DefaultDialer.Dial("ws://"+q.addr+"/api/v1/tasks/ws?access_token=alice", nil)
	require.NoError(t, err)
	wsResp.Body.Close()
	defer conn.Close()
	require.NoError(t, conn.WriteJSON(map[string]any{"action": "subscribe", "taskId": task.TaskID}))
	wsEvents := 0
	for {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, websocket.CloseNormalClosure, ce.Code)
			break
		}
		if conformance.CheckFrame(t, data).Event != nil {
			wsEvents++
		}
	}
	require.Equal(t, len(evs), wsEvents)

	// Cancel a sleeping task.
	sleepID := q.create("alice", "demo.sleep", `{"delayMs":60000}`)
	status, _ = q.do(http.MethodPost, "/api/v1/tasks/"+sleepID+"/cancel", "alice", "", "")
	require.Equal(t, http.StatusAccepted, status)
	sleepEvents := q.events("alice", sleepID)
	require.Equal(t, contracts.EventCancelled, sleepEvents[len(sleepEvents)-1].Type)

	// The streams' teardown ends on the server after the client saw the
	// end; wait for the gauge to come down, then read everything else.
	var m map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		m = q.scrape()
		sseOpen, okSSE := sample(m, observe.MetricStreamsActive, observe.TagTransport, "sse")
		wsOpen, okWS := sample(m, observe.MetricStreamsActive, observe.TagTransport, "ws")
		return okSSE && okWS && sseOpen == 0 && wsOpen == 0
	}, wait, 10*time.Millisecond, "streams_active back at 0 for sse and ws")

	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{observe.MetricTaskStarts, nil, 2},
		{observe.MetricDuplicates, nil, 1},
		{observe.MetricCancels, nil, 1},
		{observe.MetricEventsDelivered, []string{observe.TagTransport, "sse"}, float64(len(evs))},
		{observe.MetricEventsDelivered, []string{observe.TagTransport, "ws"}, float64(len(evs))},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks", observe.TagStatus, "201"}, 2},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks", observe.TagStatus, "200"}, 1},
		{observe.MetricHTTPRequestSeconds, []string{observe.TagRoute, "/api/v1/tasks/:taskId/cancel", observe.TagStatus, "202"}, 1},
	} {
		got, ok := sample(m, tc.name, tc.labels...)
		require.True(t, ok, "no series %s %v", tc.name, tc.labels)
		assert.Equal(t, tc.want, got, "%s %v", tc.name, tc.labels)
	}
	polls, ok := sample(m, observe.MetricFallbacks, observe.TagTransport, "http")
	require.True(t, ok)
	pollRequests, ok := sample(m, observe.MetricHTTPRequestSeconds, observe.TagRoute, "/api/v1/tasks/:taskId/events", observe.TagStatus, "200")
	require.True(t, ok)
	assert.GreaterOrEqual(t, polls, 2.0, "one long-poll or more per task")
	assert.Equal(t, pollRequests, polls, "every answered long-poll is counted once")
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_start_time_seconds"} {
		_, ok := sample(m, name)
		assert.True(t, ok, "collector metric %s", name)
	}

	// The executor logs through the same logger as the bridge.
	for _, msg := range []string{"http.task.create", "task.create.accepted", "task.run.started", "stream opened"} {
		assert.NotEmpty(t, logs.FilterMessage(msg).All(), msg)
	}
	for _, e := range logs.FilterMessage("task.run.started").All() {
		assert.Equal(t, "internal", e.ContextMap()[observe.FieldTransport])
	}
}
