//go:build !race

package fiberbridge_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// TestRouteAllocations holds each task route's allocations per request,
// through the whole Fiber stack on the memory stores (newRouteBench), to
// what the request path costs today, so that a change that adds one fails
// here. (Not under -race, which allocates on its own: make test runs it
// without -race, in make test-counts; timing is the benchmarks' business:
// BenchmarkRoute*.) For scale: the bare Fiber JSON handler next to them
// allocates 10 times per request.
//
// What is left: create: the two strings of the body, its canonical input,
// the service's canonical copy, task id, fingerprint, the stored record
// and its input, the AuthContext in locals and the subject's copies (with
// the limits off, as here, neither the memory store's quota nor the
// subject limits keep anything per task);
// poll: the task id's copy and the cursor the answer points to; cancel:
// the task id and the strict decoding of the optional body; action: the
// above plus the receipt, the TASK_ACTION_ACCEPTED payload and event and
// the suspension's resolution.
func TestRouteAllocations(t *testing.T) {
	rb := newRouteBench(t)
	var ctx fasthttp.RequestCtx
	measure := func(name string, want float64, status int, prepare func(), run func()) {
		t.Helper()
		prepare()
		got := testing.AllocsPerRun(200, run)
		require.Equal(t, status, ctx.Response.StatusCode(), "%s: %s", name, ctx.Response.Body())
		assert.LessOrEqual(t, got, want, "%s: allocations per request", name)
		t.Logf("%-14s %3.0f allocations per request", name, got)
	}
	serve := func() { rb.handler(&ctx) }

	var body []byte
	n := 0
	measure("create", 11, fasthttp.StatusCreated, func() {
		request(&ctx, fasthttp.MethodPost, "/api/v1/tasks", []byte("{}"))
	}, func() {
		n++
		body = createBody(body, n)
		ctx.Request.SetBodyRaw(body)
		rb.handler(&ctx)
	})
	measure("create repeat", 8, fasthttp.StatusOK, func() {
		request(&ctx, fasthttp.MethodPost, "/api/v1/tasks", createBody(nil, 1))
	}, serve)
	measure("poll", 2, fasthttp.StatusOK, func() {
		request(&ctx, fasthttp.MethodGet, "/api/v1/tasks/"+rb.taskID+"/events?maxEvents=100", nil)
	}, serve)
	measure("cancel", 3, fasthttp.StatusAccepted, func() {
		request(&ctx, fasthttp.MethodPost, "/api/v1/tasks/"+rb.taskID+"/cancel", []byte(`{"reason":"no longer needed"}`))
	}, serve)
	i := 0
	measure("action", 18, fasthttp.StatusAccepted, func() {
		for j := range 202 {
			rb.suspend(t, "s"+strconv.Itoa(j))
		}
		request(&ctx, fasthttp.MethodPost, "/api/v1/tasks/"+rb.taskID+"/actions", []byte("{}"))
	}, func() {
		body = actionBody(body, i)
		i++
		ctx.Request.SetBodyRaw(body)
		rb.handler(&ctx)
	})
}
