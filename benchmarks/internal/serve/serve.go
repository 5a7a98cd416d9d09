package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/control"
)

// Server is a bench server: a data path to measure plus a control backend.
type Server interface {
	control.Backend
	// Serve serves the data path on ln until Shutdown; it returns nil
	// after a Shutdown.
	Serve(ln net.Listener) error
	// Shutdown stops the data path, ends open streams and releases what the
	// server holds. It honours ctx.
	Shutdown(ctx context.Context) error
}

// Ready is the line a bench server prints to stdout once it serves.
type Ready struct {
	Kind    string `json:"kind"`
	Data    string `json:"data"`
	Control string `json:"control"`
	PID     int    `json:"pid"`
}

// ReadyPrefix starts the ready line, so that a reader can skip other output.
const ReadyPrefix = "TBREADY "

// ParseReady parses a line printed by Run; ok is false for other lines.
func ParseReady(line string) (Ready, bool) {
	var r Ready
	if len(line) <= len(ReadyPrefix) || line[:len(ReadyPrefix)] != ReadyPrefix {
		return r, false
	}
	if err := json.Unmarshal([]byte(line[len(ReadyPrefix):]), &r); err != nil {
		return r, false
	}
	return r, true
}

// Run serves srv on dataAddr and its control endpoint on controlAddr (both
// host:port; port 0 picks a free one), writes the Ready line to out, and
// serves until ctx ends or the data path fails. It then shuts both down
// within a few seconds and returns the first error.
func Run(ctx context.Context, kind string, srv Server, dataAddr, controlAddr string, out io.Writer) error {
	dataLn, err := net.Listen("tcp", dataAddr)
	if err != nil {
		return fmt.Errorf("serve: data listener: %w", err)
	}
	ctlLn, err := net.Listen("tcp", controlAddr)
	if err != nil {
		dataLn.Close()
		return fmt.Errorf("serve: control listener: %w", err)
	}
	ctl := &http.Server{Handler: control.NewServer(srv), ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(dataLn) }()
	go func() {
		if err := ctl.Serve(ctlLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()

	ready, _ := json.Marshal(Ready{Kind: kind, Data: dataLn.Addr().String(), Control: ctlLn.Addr().String(), PID: os.Getpid()})
	fmt.Fprintf(out, "%s%s\n", ReadyPrefix, ready)

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		if first == nil {
			first = errors.New("serve: a listener stopped unexpectedly")
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ctl.Shutdown(shutCtx); err != nil && first == nil {
		first = err
	}
	if err := srv.Shutdown(shutCtx); err != nil && first == nil {
		first = err
	}
	return first
}
