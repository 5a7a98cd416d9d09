package main

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// childClient talks to a child quickstart.
type childClient struct {
	t    *testing.T
	addr string
	http *http.Client
}

func (c *child) client() *childClient {
	return &childClient{t: c.t, addr: c.addr, http: &http.Client{Timeout: wait, Transport: &http.Transport{DisableKeepAlives: true}}}
}

// health reports whether GET /health answers 200.
func (cc *childClient) health() error {
	r, err := e2etest.Do(cc.http, e2etest.Request{Method: http.MethodGet, URL: "http://" + cc.addr + "/health"})
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return fmt.Errorf("status %d", r.Status)
	}
	return nil
}

// streamOne creates a demo.progress task and reads its first event over
// SSE.
func (cc *childClient) streamOne(token string) error {
	r, err := e2etest.Do(cc.http, e2etest.Request{Method: http.MethodPost, URL: "http://" + cc.addr + "/api/v1/tasks", Token: token,
		ContentType: "application/json", Body: []byte(`{"clientRequestId":"` + contracts.NewID() + `","taskType":"demo.progress","input":{"steps":2,"delayMs":1}}`)})
	if err != nil {
		return err
	}
	if r.Status != http.StatusCreated {
		return fmt.Errorf("create: %d %s", r.Status, r.Body)
	}
	taskID := strings.Split(strings.Split(string(r.Body), `"taskId":"`)[1], `"`)[0]
	sse, resp, err := e2etest.OpenSSE(nil, cc.addr, "/api/v1/tasks/"+taskID+"/events/stream",
		http.Header{"Authorization": {"Bearer " + token}}, wait)
	if err != nil {
		return err
	}
	if sse == nil {
		return fmt.Errorf("stream refused: %d %s", resp.Status, resp.Body)
	}
	defer sse.Close()
	events, err := sse.ReadToEnd(wait)
	if err != nil {
		return err
	}
	if len(events) == 0 || !events[len(events)-1].Type.IsTerminal() {
		return fmt.Errorf("stream ended without the terminal event: %d events", len(events))
	}
	return nil
}

// TestSurvivesConnectionFlood: 1,100 idle TCP connections (no request, no
// token) against the quickstart in a process limited to 1,024 open files.
// Without a connection cap fasthttp's accept loop ends on "too many open
// files" and the process exits; with it the flood waits in the listen
// backlog, and once the flood is closed the server answers /health and
// streams a new task to its end.
func TestSurvivesConnectionFlood(t *testing.T) {
	t.Parallel()
	c := startChild(t, 1024)
	cc := c.client()
	require.NoError(t, cc.health())
	baseFiles, baseRSS := c.openFiles(), c.rssBytes()

	flood := make([]net.Conn, 0, 1100)
	defer func() {
		for _, conn := range flood {
			_ = conn.Close()
		}
	}()
	for range 1100 {
		conn, err := net.DialTimeout("tcp", c.addr, wait)
		require.NoError(t, err)
		flood = append(flood, conn)
	}
	// The server took as many as its cap allows and no more.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Greater(ct, c.openFiles(), baseFiles+800, "the flood was accepted up to the cap")
	}, wait, 20*time.Millisecond)
	assert.Less(t, c.openFiles(), 1024, "below the file limit")
	assert.True(t, c.alive(), "the server is still running during the flood: %s", c.stderr())
	held := c.openFiles() - baseFiles
	t.Logf("%d idle connections held: RSS %d KiB more, %.1f KiB each (SECURITY.md quotes it)",
		held, (c.rssBytes()-baseRSS)>>10, float64(c.rssBytes()-baseRSS)/1024/float64(held))

	for _, conn := range flood {
		require.NoError(t, conn.Close())
	}
	flood = nil
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.NoError(ct, cc.health())
	}, wait, 20*time.Millisecond, "health after the flood; child log: %s", c.stderr())
	require.NoError(t, cc.streamOne("alice"), "a new stream after the flood")
	assert.True(t, c.alive())
}

// TestDeclaredBodiesReserveNoMemory: 250 connections declare a 4,000,000
// byte body (under fasthttp's 4 MiB BodyLimit) and send 8 KiB of it.
// Without body streaming fasthttp reserves the whole declared length per
// connection before the bytes arrive (about 1 GB of RSS); with
// fiberbridge.AppConfig the create route refuses the declared length with
// 413 at once and the child's RSS barely moves.
func TestDeclaredBodiesReserveNoMemory(t *testing.T) {
	t.Parallel()
	c := startChild(t, 0)
	cc := c.client()
	require.NoError(t, cc.health())
	before := c.rssBytes()

	const conns = 250
	head := "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n"
	pre := head + strings.Repeat(" ", 8<<10)
	var wg sync.WaitGroup
	statuses := make([]int, conns)
	errs := make([]error, conns)
	held := make([]net.Conn, conns)
	defer func() {
		for _, conn := range held {
			if conn != nil {
				_ = conn.Close()
			}
		}
	}()
	for i := range conns {
		conn, err := net.DialTimeout("tcp", c.addr, wait)
		require.NoError(t, err)
		held[i] = conn
		wg.Add(1)
		go func() { // owner: this test; ends with the read deadline
			defer wg.Done()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte(pre)); err != nil {
				errs[i] = err
				return
			}
			resp, err := e2etest.ReadResponse(conn)
			statuses[i], errs[i] = resp.Status, err
		}()
	}
	wg.Wait()
	after := c.rssBytes()
	t.Logf("child RSS %d MB before, %d MB with %d declared 4 MB bodies", before>>20, after>>20, conns)
	for i := range conns {
		require.NoError(t, errs[i], "connection %d got no answer", i)
		require.Equal(t, http.StatusRequestEntityTooLarge, statuses[i])
	}
	assert.Less(t, after-before, int64(64<<20), "memory reserved for bodies that never came")
	require.NoError(t, cc.health())
}

// TestAppliesHostSettings: the quickstart's app carries SECURITY.md's
// settings (fiberbridge.AppConfig): read, write and idle timeouts,
// streamed request bodies and no multipart pre-parsing, so a malformed
// multipart body sent to the unauthenticated POST /health is never parsed
// (fasthttp would otherwise read it, and answer its parse error, before
// any route runs).
func TestAppliesHostSettings(t *testing.T) {
	q := start(t)
	cfg := q.srv.app.Config()
	assert.Positive(t, cfg.ReadTimeout)
	assert.Positive(t, cfg.WriteTimeout)
	assert.Positive(t, cfg.IdleTimeout)
	assert.True(t, cfg.StreamRequestBody)
	assert.True(t, cfg.DisablePreParseMultipartForm)

	body := "--XX\r\nnot a part header at all\r\n\r\n\r\n..."
	raw := fmt.Sprintf("POST /health HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := e2etest.RawExchange(q.addr, []byte(raw), wait)
	require.NoError(t, err)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.Status, "routed, not parsed: %s", resp.Body)
}

// TestInMemoryStoreIsBounded: one user creates 100 tasks with a 3.9 MB
// attachment each. The in-memory stores refuse that user's creates with
// 429 QUOTA_EXCEEDED (and Retry-After) once its 64 MiB share is held,
// another user's create still succeeds, and the child's RSS stays far
// below the ~760 MB the same run reached without limits.
func TestInMemoryStoreIsBounded(t *testing.T) {
	t.Parallel()
	c := startChild(t, 0)
	cc := c.client()
	before := c.rssBytes()
	// One multipart body, built once; each create patches its own
	// clientRequestId (32 hex digits) into a copy.
	var tmpl bytes.Buffer
	w := multipart.NewWriter(&tmpl)
	placeholder := strings.Repeat("0", 32)
	require.NoError(t, w.WriteField("clientRequestId", placeholder))
	require.NoError(t, w.WriteField("taskType", "demo.progress"))
	require.NoError(t, w.WriteField("input", `{"steps":1,"delayMs":1}`))
	fw, err := w.CreateFormFile("attachment", "big.bin")
	require.NoError(t, err)
	_, err = fw.Write(bytes.Repeat([]byte("a"), 3_900_000))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	at := bytes.Index(tmpl.Bytes(), []byte(placeholder))
	body := make([]byte, tmpl.Len())
	create := func(token string) e2etest.Response {
		copy(body, tmpl.Bytes())
		copy(body[at:], contracts.NewID())
		return e2etest.MustDo(t, cc.http, e2etest.Request{Method: http.MethodPost, URL: "http://" + c.addr + "/api/v1/tasks",
			Token: token, ContentType: w.FormDataContentType(), Body: body})
	}
	created, refused := 0, 0
	for range 100 {
		r := create("alice")
		switch r.Status {
		case http.StatusCreated:
			created++
		default:
			env := e2etest.CheckEnvelope(t, r, http.StatusTooManyRequests, bridgeerr.CodeQuotaExceeded)
			assert.Equal(t, "MaxBytesPerOwner", env.Details["limit"])
			assert.NotEmpty(t, r.Header.Get("Retry-After"))
			refused++
		}
	}
	after := c.rssBytes()
	t.Logf("child RSS %d MB before, %d MB after %d creates (%d refused) of 3.9 MB", before>>20, after>>20, created, refused)
	assert.Positive(t, refused, "the user's share ran out")
	assert.Less(t, after-before, int64(256<<20), "memory held by one user's uploads")
	r := create("bob")
	require.Equal(t, http.StatusCreated, r.Status, "another user still creates: %s", r.Body)
}

// goroutines reads go_goroutines from the child's /metrics.
func (cc *childClient) goroutines() (int, error) {
	r, err := e2etest.Do(cc.http, e2etest.Request{Method: http.MethodGet, URL: "http://" + cc.addr + "/metrics"})
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no go_goroutines in /metrics")
}

// TestAbandonedLongPollsReleaseAtOnce: 1,050 long-polls (60 s wait, a
// cursor past the end of a suspended task) against the quickstart in a
// process limited to 1,024 open files, whose clients then go away. Each
// poll notices its client left and answers at once, so the child's
// descriptors and goroutines are back to where they were within seconds
// (not after the 60 s wait), and it serves /health and a new stream.
func TestAbandonedLongPollsReleaseAtOnce(t *testing.T) {
	t.Parallel()
	c := startChild(t, 1024)
	cc := c.client()
	r := e2etest.MustDo(t, cc.http, e2etest.Request{Method: http.MethodPost, URL: "http://" + c.addr + "/api/v1/tasks", Token: "alice",
		ContentType: "application/json", Body: []byte(`{"clientRequestId":"` + contracts.NewID() + `","taskType":"demo.approval"}`)})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	taskID := strings.Split(strings.Split(string(r.Body), `"taskId":"`)[1], `"`)[0]
	baseFiles, baseRSS := c.openFiles(), c.rssBytes()
	baseGoroutines, err := cc.goroutines()
	require.NoError(t, err)

	poll := "GET /api/v1/tasks/" + taskID + "/events?waitTimeoutMs=60000&afterEventId=9999999999999-0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n\r\n"
	polls := make([]net.Conn, 0, 1050)
	defer func() {
		for _, conn := range polls {
			_ = conn.Close()
		}
	}()
	for range 1050 {
		conn, err := net.DialTimeout("tcp", c.addr, wait)
		require.NoError(t, err)
		_, err = conn.Write([]byte(poll))
		require.NoError(t, err)
		polls = append(polls, conn)
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Greater(ct, c.openFiles(), baseFiles+800, "the polls are held")
	}, wait, 20*time.Millisecond)
	held := c.openFiles() - baseFiles
	t.Logf("%d waiting long-polls: RSS %d KiB more, %.1f KiB each (SECURITY.md quotes it)",
		held, (c.rssBytes()-baseRSS)>>10, float64(c.rssBytes()-baseRSS)/1024/float64(held))
	for _, conn := range polls {
		require.NoError(t, conn.Close())
	}
	polls = nil

	start := time.Now()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.LessOrEqual(ct, c.openFiles(), baseFiles+10, "descriptors of abandoned polls")
	}, 10*time.Second, 20*time.Millisecond, "child log: %s", c.stderr())
	t.Logf("descriptors of 1,050 abandoned long-polls released in %v", time.Since(start).Round(time.Millisecond))
	// Each poll's watcher and connection goroutine end with it; fasthttp
	// parks a finished connection's worker goroutine for reuse and stops
	// it after MaxIdleWorkerDuration (10 s, checked every 10 s), so the
	// count is back to its base within about 20 s, far inside the 60 s
	// the polls would have waited.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		n, err := cc.goroutines()
		if assert.NoError(ct, err) {
			assert.LessOrEqual(ct, n, baseGoroutines+10, "goroutines of abandoned polls")
		}
	}, 25*time.Second, 200*time.Millisecond)
	t.Logf("goroutines back to base after %v", time.Since(start).Round(time.Millisecond))
	require.NoError(t, cc.health())
	require.NoError(t, cc.streamOne("alice"))
}
