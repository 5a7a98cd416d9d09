package streaming_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/fasthttp/websocket"
	contribws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// exampleServer mounts a hub's SSE and WebSocket handlers on a Fiber app;
// authentication and authorization are the host's (here: every task is
// visible).
func exampleServer(hub *streaming.Hub) (addr string, stop func()) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/tasks/:taskId/events/stream", func(c *fiber.Ctx) error {
		cursor, err := contracts.ParseCursor(c.Get("Last-Event-ID"))
		if err != nil {
			return fiber.ErrBadRequest
		}
		return hub.ServeSSE(c, streaming.StreamRequest{TaskID: c.Params("taskId"), Cursor: cursor})
	})
	app.Get("/tasks/ws", contribws.New(func(c *contribws.Conn) {
		hub.AttachWebSocket(c, streaming.WebSocketRequest{
			Authorize: func(context.Context, string) error { return nil },
		})
	}, contribws.Config{}))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	return ln.Addr().String(), func() {
		_ = app.Shutdown()
		_ = ln.Close()
		<-done
	}
}

// ExampleHub_ServeSSE runs a hub over the in-memory store and reads a
// task's stream as an SSE client: the replay, then the end of the response
// after the terminal event.
func ExampleHub_ServeSSE() {
	events := memstore.New(memstore.Options{}).Events
	hub, err := streaming.NewHub(events, streaming.Options{})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- hub.Run(ctx) }()
	addr, stop := exampleServer(hub)

	_, _ = events.Append(ctx, "t1", contracts.Started("go"))
	done, _ := contracts.Completed(map[string]int{"pages": 40})
	_, _ = events.Append(ctx, "t1", done)

	resp, err := http.Get("http://" + addr + "/tasks/t1/events/stream")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev contracts.TaskEvent
			_ = json.Unmarshal([]byte(data), &ev)
			fmt.Println(ev.Type)
		}
	}
	fmt.Println("end of stream:", sc.Err() == nil)
	_ = resp.Body.Close()

	_ = hub.Shutdown(context.Background())
	cancel()
	<-ran
	stop()
	// Output:
	// 200 text/event-stream
	// TASK_STARTED
	// TASK_COMPLETED
	// end of stream: true
}

// ExampleHub_AttachWebSocket subscribes over WebSocket: confirmation,
// replay, and close 1000 after the terminal event.
func ExampleHub_AttachWebSocket() {
	events := memstore.New(memstore.Options{}).Events
	hub, err := streaming.NewHub(events, streaming.Options{})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- hub.Run(ctx) }()
	addr, stop := exampleServer(hub)

	_, _ = events.Append(ctx, "t2", contracts.Started(""))
	failed, _ := contracts.Failed("RENDER_FAILED", "out of paper", true)
	_, _ = events.Append(ctx, "t2", failed)

	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/tasks/ws", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = conn.WriteJSON(contracts.SubscribeRequest{Action: "subscribe", TaskID: "t2"})
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			fmt.Println(err)
			break
		}
		var frame struct {
			Type contracts.EventType `json:"type"`
			Live bool                `json:"live"`
		}
		_ = json.Unmarshal(data, &frame)
		if frame.Type == contracts.FrameSubscriptionConfirmed {
			fmt.Println(frame.Type, "live:", frame.Live)
		} else {
			fmt.Println(frame.Type)
		}
	}
	_ = conn.Close()

	_ = hub.Shutdown(context.Background())
	cancel()
	<-ran
	stop()
	// Output:
	// SUBSCRIPTION_CONFIRMED live: true
	// TASK_STARTED
	// TASK_FAILED
	// websocket: close 1000 (normal)
}
