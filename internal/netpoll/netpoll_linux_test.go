//go:build linux

package netpoll_test

import (
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/internal/netpoll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Handler that reads what arrives and reports it.
type recorder struct {
	got chan string
	eof chan struct{}
}

func (r *recorder) OnReadable(rc syscall.RawConn, buf []byte) {
	n, eof, err := netpoll.ReadNow(rc, buf)
	switch {
	case err != nil || eof:
		select {
		case r.eof <- struct{}{}:
		default:
		}
	case n > 0:
		r.got <- string(buf[:n])
	}
}

// pair returns a server-side TCP connection and its client.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return server, client
}

// TestDetachedConnectionIsWatched: a detached connection outlives its
// original descriptor, and the poller reports its input and its peer
// leaving; after Remove nothing is reported.
func TestDetachedConnectionIsWatched(t *testing.T) {
	p, err := netpoll.New()
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by this test: ends with p.Stop
		defer wg.Done()
		p.Run()
	}()
	defer func() {
		p.Stop()
		wg.Wait()
	}()

	server, client := pair(t)
	dup, ok := netpoll.Detach(server)
	require.True(t, ok)
	require.NoError(t, server.Close(), "the owner lets its descriptor go")
	defer dup.Close()

	r := &recorder{got: make(chan string, 4), eof: make(chan struct{}, 1)}
	key, err := p.Add(dup.(syscall.Conn), r)
	require.NoError(t, err)
	_, err = client.Write([]byte("ping"))
	require.NoError(t, err)
	select {
	case s := <-r.got:
		assert.Equal(t, "ping", s)
	case <-time.After(5 * time.Second):
		t.Fatal("no input reported")
	}
	_, err = dup.Write([]byte("pong"))
	require.NoError(t, err, "the detached connection writes")
	buf := make([]byte, 4)
	_, err = client.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "pong", string(buf))

	require.NoError(t, client.Close())
	select {
	case <-r.eof:
	case <-time.After(5 * time.Second):
		t.Fatal("peer leaving not reported")
	}
	p.Remove(key)
	p.Remove(key) // idempotent
}

func TestDetachRefusesWrappedConnections(t *testing.T) {
	server, _ := pair(t)
	_, ok := netpoll.Detach(struct{ net.Conn }{server})
	assert.False(t, ok)
}

func TestAddAfterStopFails(t *testing.T) {
	p, err := netpoll.New()
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { // owned by this test
		defer close(done)
		p.Run()
	}()
	p.Stop()
	<-done
	server, _ := pair(t)
	_, err = p.Add(server.(*net.TCPConn), &recorder{})
	assert.Error(t, err)
}
