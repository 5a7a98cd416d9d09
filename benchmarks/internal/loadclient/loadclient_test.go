package loadclient

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadAll(t *testing.T) {
	msg := strings.Repeat("x", 10_000)
	got, err := readAll(iotest.OneByteReader(strings.NewReader(msg)), make([]byte, 0, 16))
	require.NoError(t, err)
	assert.Equal(t, msg, string(got))

	_, err = readAll(bytes.NewReader(make([]byte, maxFrameLength+1)), nil)
	assert.Error(t, err, "frames over the limit are refused")

	_, err = readAll(iotest.ErrReader(io.ErrUnexpectedEOF), nil)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestDialerSourceAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Addr, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr()
			c.Close()
		}
	}()

	d, err := NewDialer([]string{"127.0.0.3", "127.0.0.4"}, time.Second)
	require.NoError(t, err)
	for _, want := range []string{"127.0.0.3", "127.0.0.4"} {
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		require.NoError(t, err)
		c.Close()
		assert.Equal(t, want, (<-accepted).(*net.TCPAddr).IP.String(), "connections rotate over the source addresses")
	}

	_, err = NewDialer([]string{"not-an-ip"}, time.Second)
	assert.Error(t, err)
}

func TestStartChildRejectsUnknownTransport(t *testing.T) {
	_, err := startChild(context.Background(), &Assignment{Addr: "127.0.0.1:1",
		Groups: []Group{{TaskID: "t", Transport: "carrier-pigeon", Count: 1}}})
	assert.ErrorContains(t, err, "carrier-pigeon")
}

func TestResultMerge(t *testing.T) {
	a := &Result{Subscribers: 2, Events: 10, Gaps: 1, ErrorSamples: []string{"x"}, Latency: &measure.Histogram{}}
	a.Latency.Record(5)
	b := &Result{Subscribers: 3, Events: 5, Dups: 2, Latency: &measure.Histogram{}, HTTP: &HTTPResult{Requests: 7, Elapsed: time.Second}}
	b.Latency.Record(9)
	var total Result
	total.Merge(a)
	total.Merge(b)
	assert.Equal(t, 5, total.Subscribers)
	assert.Equal(t, uint64(15), total.Events)
	assert.Equal(t, uint64(1), total.Gaps)
	assert.Equal(t, uint64(2), total.Dups)
	assert.Equal(t, []string{"x"}, total.ErrorSamples)
	assert.Equal(t, uint64(2), total.Latency.Count())
	assert.Equal(t, uint64(9), total.Latency.Max())
	assert.Equal(t, 7.0, total.HTTP.RPS())
}
