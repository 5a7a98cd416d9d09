package connlimit_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/connlimit"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m)
}

const wait = 10 * time.Second

// accepted runs Accept on l in the background and delivers its result.
func accepted(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// accept returns the next connection Accept gives, failing the test when
// none comes within wait.
func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	select {
	case c := <-accepted(l):
		return c
	case <-time.After(wait):
		t.Fatal("Accept returned nothing")
		return nil
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestCapWaitsForSlot(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l, err := connlimit.New(ln, connlimit.Config{Max: 2})
	require.NoError(t, err)
	defer l.Close()
	addr := ln.Addr().String()

	dial(t, addr)
	dial(t, addr)
	dial(t, addr) // waits in the backlog
	a, b := accept(t, l), accept(t, l)
	require.NotNil(t, a)
	require.NotNil(t, b)
	assert.Equal(t, 2, l.Open())

	third := accepted(l)
	select {
	case <-third:
		t.Fatal("a third connection was accepted over Max 2")
	case <-time.After(100 * time.Millisecond): // proves a negative; any Accept would arrive in microseconds
	}

	// A Hold keeps the slot after Close, until it is released.
	release := a.(*connlimit.Conn).Hold()
	require.NoError(t, a.Close())
	_ = a.Close() // a second Close gives nothing back twice
	assert.Equal(t, 2, l.Open())
	select {
	case <-third:
		t.Fatal("accepted while a Hold kept the slot")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	release() // only the first call counts
	var c net.Conn
	select {
	case c = <-third:
	case <-time.After(10 * time.Second):
		t.Fatal("no accept within 10 s of the release")
	}
	require.NotNil(t, c)
	assert.Equal(t, 2, l.Open())
	assert.GreaterOrEqual(t, l.Stats().Waits, int64(1))
	require.NoError(t, b.Close())
	require.NoError(t, c.Close())
	assert.Equal(t, 0, l.Open())
}

func TestCloseWakesWaitingAccept(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l, err := connlimit.New(ln, connlimit.Config{Max: 1})
	require.NoError(t, err)
	dial(t, ln.Addr().String())
	first := accept(t, l)
	require.NotNil(t, first)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	require.NoError(t, l.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(wait):
		t.Fatal("Accept still waiting after Close")
	}
	require.NoError(t, first.Close())
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = connlimit.New(ln, connlimit.Config{Max: -1})
	require.Error(t, err)
	_, err = connlimit.New(nil)
	require.Error(t, err)
	_, err = connlimit.New(ln, connlimit.Config{Reserve: 1 << 40})
	require.Error(t, err)
	l, err := connlimit.New(ln)
	require.NoError(t, err)
	var rl syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl))
	want := int(rl.Cur) - max(64, int(rl.Cur)/8)
	assert.Equal(t, want, l.Max(), "default Max: the soft limit less the reserve")
}

// The child process: a line server with a small open-file limit behind a
// connlimit.Listener whose Max is deliberately above that limit, so accept
// fails with EMFILE while the parent floods it.
const (
	childEnv   = "CONNLIMIT_TEST_CHILD"
	childFiles = 64
)

func runChild() int {
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: childFiles, Max: childFiles}); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	l, err := connlimit.New(ln, connlimit.Config{Max: 10 * childFiles, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		fmt.Println("connlimit:", err)
		return 1
	}
	fmt.Println("addr", ln.Addr().String())
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Println("accept:", err) // the parent sees the server die
			return 1
		}
		go func() {
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			_, _ = fmt.Fprintf(c, "ok %d %s", l.Stats().Backoffs, line)
		}()
	}
}

// TestAcceptSurvivesFileExhaustion floods a child process that has 64 open
// files with 3x as many connections: accept fails with "too many open
// files" (EMFILE) meanwhile, and once the flood is closed the same
// listener serves a new client. Without the backoff the accept loop ends
// on the first EMFILE.
func TestAcceptSurvivesFileExhaustion(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewReader(out)
	// A child that never announces itself is killed, which ends the read.
	silent := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	first, err := lines.ReadString('\n')
	silent.Stop()
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(first), "addr ")
	require.True(t, ok, first)

	flood := make([]net.Conn, 0, 3*childFiles)
	for range 3 * childFiles {
		c, err := net.DialTimeout("tcp", addr, wait)
		require.NoError(t, err)
		flood = append(flood, c)
	}
	// Every flood connection that got a descriptor answers; the rest wait
	// in the backlog while accept reports EMFILE.
	_, err = fmt.Fprintf(flood[0], "first\n")
	require.NoError(t, err)
	_ = flood[0].SetReadDeadline(time.Now().Add(wait))
	reply, err := bufio.NewReader(flood[0]).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(reply, "ok "), reply)
	for _, c := range flood {
		require.NoError(t, c.Close())
	}

	// After the flood: a new client is served, and the server did back off.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		conn, err := net.DialTimeout("tcp", addr, wait)
		if !assert.NoError(c, err) {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		_, err = fmt.Fprintf(conn, "after\n")
		assert.NoError(c, err)
		reply, err := bufio.NewReader(conn).ReadString('\n')
		if !assert.NoError(c, err) {
			return
		}
		fields := strings.Fields(reply)
		if assert.Len(c, fields, 3, reply) {
			n, _ := strconv.Atoi(fields[1])
			assert.Positive(c, n, "the server met EMFILE and backed off")
			assert.Equal(c, "after", fields[2])
		}
	}, wait, 50*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	assert.True(t, ws.Signaled(), "child ended by the signal, not by an accept error: %v", cmd.ProcessState)
}
