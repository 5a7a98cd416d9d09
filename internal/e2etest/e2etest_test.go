package e2etest_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

const wait = 10 * time.Second

func event(t testing.TB, id string) []byte {
	t.Helper()
	ev := contracts.TaskEvent{Type: contracts.EventStarted, TaskID: "t", EventID: contracts.MustParseEventID(id),
		CreatedAt: time.Unix(1700000000, 0), Payload: []byte(`{}`)}
	return ev.AppendJSON(nil)
}

// serve starts an app whose routes answer the stream bodies the readers
// must classify.
func serve(t *testing.T) *e2etest.Server {
	t.Helper()
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
	stream := func(body string) fiber.Handler {
		return func(c *fiber.Ctx) error {
			c.Set("Content-Type", "text/event-stream")
			c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
				_, _ = w.WriteString(body)
				_ = w.Flush()
			})
			return nil
		}
	}
	good := "id: 1-1\ndata: " + string(event(t, "1-1")) + "\n\n: ping\n\n"
	app.Get("/clean", stream(good))
	app.Get("/partial", stream(good+"id: 1-2\ndata: {"))
	app.Get("/wrong-id", stream("id: 9-9\ndata: "+string(event(t, "1-1"))+"\n\n"))
	app.Get("/not-a-frame", stream("data: {\"type\":\"NOPE\"}\n\n"))
	app.Get("/refused", func(*fiber.Ctx) error {
		return bridgeerr.New(bridgeerr.CodeTaskNotFound, "task not found")
	})
	app.Get("/ws", websocket.New(func(c *websocket.Conn) {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"HEARTBEAT","taskId":"t","live":true}`))
		_ = c.WriteMessage(websocket.TextMessage, event(t, "1-1"))
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, string(msg[:4])))
		_, _, _ = c.ReadMessage()
	}))
	return e2etest.Serve(t, app)
}

func TestSSEReaderClassifiesEnds(t *testing.T) {
	srv := serve(t)
	s, r, err := e2etest.OpenSSE(nil, srv.Addr, "/clean", nil, wait)
	require.NoError(t, err)
	require.NotNil(t, s, "%d %s", r.Status, r.Body)
	evs, err := s.ReadToEnd(wait)
	require.NoError(t, err, "a clean end")
	require.Len(t, evs, 1)
	assert.Equal(t, "1-1", evs[0].EventID.String())
	require.NoError(t, s.Close())

	s, _, err = e2etest.OpenSSE(nil, srv.Addr, "/partial", nil, wait)
	require.NoError(t, err)
	_, err = s.ReadToEnd(wait)
	assert.ErrorIs(t, err, e2etest.ErrPartialFrame)
	require.NoError(t, s.Close())

	for _, path := range []string{"/wrong-id", "/not-a-frame"} {
		s, _, err = e2etest.OpenSSE(nil, srv.Addr, path, nil, wait)
		require.NoError(t, err)
		_, err = s.NextEvent(wait)
		assert.Error(t, err, path)
		require.NoError(t, s.Close())
	}

	s, r, err = e2etest.OpenSSE(nil, srv.Addr, "/refused", nil, wait)
	require.NoError(t, err)
	assert.Nil(t, s)
	e2etest.CheckEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)
	_, err = e2etest.EnvelopeError(r, http.StatusNotFound, bridgeerr.CodeInternal)
	assert.Error(t, err, "the wrong code is caught")
	_, err = e2etest.EnvelopeError(e2etest.Response{Status: 404, Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte("<html>")},
		http.StatusNotFound, bridgeerr.CodeTaskNotFound)
	assert.Error(t, err, "an HTML page is caught")
}

func TestWSClientAndRawExchange(t *testing.T) {
	srv := serve(t)
	c, _, err := e2etest.DialWS(nil, srv.URL("ws", "/ws"), nil, wait)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Subscribe("t", nil))
	evs, code, reason, err := c.ReadToClose(wait)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, websocket.CloseNormalClosure, code)
	assert.Equal(t, `{"ac`, reason)

	r, err := e2etest.RawExchange(srv.Addr, []byte("GET /refused HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), wait)
	require.NoError(t, err)
	e2etest.CheckEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)
}

func TestAbortResets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		_, err = io.ReadAll(conn)
		got <- err
	}()
	conn, err := e2etest.StalledDialer().Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	_, err = conn.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, e2etest.Abort(conn))
	select {
	case err = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's read did not return within 10 s")
	}
	var ne net.Error
	require.Error(t, err, "a reset, not an orderly EOF")
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
}
