package serve

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseReady(t *testing.T) {
	r, ok := ParseReady(`TBREADY {"kind":"raw","data":"127.0.0.1:1","control":"127.0.0.1:2","pid":7}`)
	require.True(t, ok)
	assert.Equal(t, Ready{Kind: "raw", Data: "127.0.0.1:1", Control: "127.0.0.1:2", PID: 7}, r)
	for _, line := range []string{"", "TBREADY ", "TBREADY {", "some log line"} {
		_, ok := ParseReady(line)
		assert.False(t, ok, "%q", line)
	}
}

// echoServer is a Server whose data path answers every connection with "hi".
type echoServer struct {
	ln   net.Listener
	done chan struct{}
}

func (e *echoServer) CreateTasks(context.Context, int) ([]string, error) { return []string{"t"}, nil }
func (e *echoServer) Append(context.Context, string, contracts.EventDraft) error {
	return nil
}

func (e *echoServer) Serve(ln net.Listener) error {
	e.ln = ln
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-e.done:
				return nil
			default:
				return err
			}
		}
		_, _ = c.Write([]byte("hi"))
		c.Close()
	}
}

func (e *echoServer) Shutdown(context.Context) error {
	close(e.done)
	return e.ln.Close()
}

func TestRunAnnouncesAndStops(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, "echo", &echoServer{done: make(chan struct{})}, "127.0.0.1:0", "127.0.0.1:0", pw)
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	ready, ok := ParseReady(strings.TrimSpace(line))
	require.True(t, ok, line)
	assert.Equal(t, "echo", ready.Kind)

	c, err := net.DialTimeout("tcp", ready.Data, time.Second)
	require.NoError(t, err)
	got, _ := io.ReadAll(c)
	c.Close()
	assert.Equal(t, "hi", string(got))

	resp, err := http.Get("http://" + ready.Control + "/stats")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	http.DefaultClient.CloseIdleConnections()

	cancel()
	require.NoError(t, <-errc)
}
