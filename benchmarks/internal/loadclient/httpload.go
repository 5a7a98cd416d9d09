package loadclient

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
	"github.com/valyala/fasthttp"
)

// HTTP load kinds.
const (
	// HTTPCreate posts create-task requests with fresh clientRequestIds.
	HTTPCreate = "create"
	// HTTPPoll gets the events of existing tasks without waiting.
	HTTPPoll = "poll"
	// HTTPBare gets a bare Fiber JSON handler, the framework's own ceiling.
	HTTPBare = "bare"
)

// BarePath is the bare JSON route every Fiber bench server serves.
const BarePath = "/bench/bare"

// BenchTaskType is the task type the bench servers accept for creates.
const BenchTaskType = "bench.hold"

// HTTPLoad is a wrk-style closed-loop load: Concurrency workers, each with
// its own keep-alive connection, send requests back to back for Duration.
type HTTPLoad struct {
	Kind        string        `json:"kind"`
	Concurrency int           `json:"concurrency"`
	Duration    time.Duration `json:"durationNs"`
	// TaskIDs are the tasks HTTPPoll reads, round robin.
	TaskIDs []string `json:"taskIds,omitempty"`
}

// HTTPResult is what an HTTP load measured.
type HTTPResult struct {
	Requests  uint64             `json:"requests"`
	Errors    uint64             `json:"errors"`
	BadStatus uint64             `json:"badStatus"`
	Elapsed   time.Duration      `json:"elapsedNs"`
	LatencyUs *measure.Histogram `json:"latencyUs"`
}

// RPS returns successful requests per second.
func (r *HTTPResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Merge adds other into r; elapsed is the longest of the two.
func (r *HTTPResult) Merge(other *HTTPResult) {
	r.Requests += other.Requests
	r.Errors += other.Errors
	r.BadStatus += other.BadStatus
	r.Elapsed = max(r.Elapsed, other.Elapsed)
	if other.LatencyUs != nil {
		if r.LatencyUs == nil {
			r.LatencyUs = &measure.Histogram{}
		}
		r.LatencyUs.Merge(other.LatencyUs)
	}
}

// runHTTPLoad runs load against addr until its duration passes or ctx ends.
func runHTTPLoad(ctx context.Context, addr, token string, dialer *Dialer, load HTTPLoad, c *counters) *HTTPResult {
	conc := max(load.Concurrency, 1)
	hc := &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      conc,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		Dial: func(a string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", a)
		},
	}
	defer hc.CloseIdleConnections()

	var requests, errs, bad atomic.Uint64
	res := &HTTPResult{LatencyUs: &measure.Histogram{}}
	deadline := time.Now().Add(load.Duration)
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	var seq atomic.Uint64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var body []byte
			for i := w; ctx.Err() == nil && time.Now().Before(deadline); i += conc {
				req.Reset()
				req.Header.Set("Authorization", "Bearer "+token)
				want := fasthttp.StatusOK
				switch load.Kind {
				case HTTPCreate:
					req.Header.SetMethod(fasthttp.MethodPost)
					req.SetRequestURI("http://" + addr + "/api/v1/tasks")
					req.Header.SetContentType("application/json")
					body = append(body[:0], `{"clientRequestId":"`...)
					body = append(body, prefix...)
					body = strconv.AppendUint(body, seq.Add(1), 10)
					body = append(body, `","taskType":"`+BenchTaskType+`","input":{"n":1}}`...)
					req.SetBodyRaw(body)
					want = fasthttp.StatusCreated
				case HTTPPoll:
					task := load.TaskIDs[i%len(load.TaskIDs)]
					req.SetRequestURI("http://" + addr + tasksPath + task + "/events?maxEvents=100")
				default:
					req.SetRequestURI("http://" + addr + BarePath)
				}
				t0 := time.Now()
				err := hc.Do(req, resp)
				lat := time.Since(t0)
				switch {
				case err != nil:
					errs.Add(1)
					c.sample("http " + load.Kind + ": " + err.Error())
				case resp.StatusCode() != want:
					bad.Add(1)
					c.sample("http " + load.Kind + ": status " + strconv.Itoa(resp.StatusCode()) + " " + string(resp.Body()))
				default:
					requests.Add(1)
					res.LatencyUs.Record(uint64(lat / time.Microsecond))
				}
			}
		}(w)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests, res.Errors, res.BadStatus = requests.Load(), errs.Load(), bad.Load()
	return res
}
