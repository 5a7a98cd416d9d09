package e2etest

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
)

// Server is a Fiber app served on a real loopback listener. Build it with
// Serve; it stops at test cleanup (or earlier with Shutdown).
type Server struct {
	// Addr is the listener's host:port.
	Addr string
	// Base is "http://" + Addr.
	Base string
	// App is the served app.
	App *fiber.App

	tb     testing.TB
	served chan error
	once   sync.Once
	err    error
}

// Serve serves app on 127.0.0.1:0 until Shutdown or the end of the test,
// whichever comes first. The cleanup shuts the app down with a 5 s deadline
// and fails the test if that or serving fails.
func Serve(tb testing.TB, app *fiber.App) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	s := &Server{Addr: ln.Addr().String(), App: app, tb: tb, served: make(chan error, 1)}
	s.Base = "http://" + s.Addr
	go func() { s.served <- app.Listener(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(tb, s.Shutdown(ctx))
	})
	return s
}

// Shutdown shuts the app down (fasthttp closes the listener and idle
// connections and waits for requests in flight) and waits for the serving
// goroutine. It is idempotent and returns the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.err = s.App.ShutdownWithContext(ctx)
		if s.err == nil {
			select {
			case s.err = <-s.served:
			case <-ctx.Done():
				s.err = ctx.Err()
			}
		}
	})
	return s.err
}

// URL returns the server's URL for path ("/api/...") with scheme
// ("http" or "ws").
func (s *Server) URL(scheme, path string) string {
	return scheme + "://" + s.Addr + path
}

// Goroutines returns the number of goroutines after letting exiting ones
// finish.
func Goroutines() int {
	runtime.Gosched()
	return runtime.NumGoroutine()
}

// WaitGoroutines waits up to timeout until at most limit goroutines run
// and returns the last count; the caller asserts on it. Goroutines of
// closed connections end on their own schedule, so this polls.
func WaitGoroutines(limit int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := Goroutines()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LiveHeap returns the bytes of reachable heap objects after a full
// collection (runtime.MemStats.HeapAlloc once the garbage is swept), the
// measure that returns to its baseline when nothing leaks.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
