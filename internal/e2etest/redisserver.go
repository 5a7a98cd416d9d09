package e2etest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// RedisServer is a redis-server a test owns, so that it can pause
// (SIGSTOP), kill and restart it without disturbing the shared one that
// scripts/with-redis.sh runs for every package. It runs on a free loopback
// port without persistence, in a temporary directory.
type RedisServer struct {
	tb     testing.TB
	bin    string
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis starts a private redis-server and waits until it answers
// PING; cleanup stops it. Without redis-server the test skips (fails under
// CI).
func StartRedis(tb testing.TB) *RedisServer {
	tb.Helper()
	bin := RedisServerBinary(tb)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(tb, l.Close())
	s := &RedisServer{tb: tb, bin: bin, port: port, dir: tb.TempDir()}
	s.Start()
	tb.Cleanup(s.stop)
	return s
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Process is the running redis-server process.
func (s *RedisServer) Process() *os.Process { return s.cmd.Process }

// Start starts the server (again, after Kill) on the same port and waits
// until it answers PING.
func (s *RedisServer) Start() {
	s.tb.Helper()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", "")
	require.NoError(s.tb, s.cmd.Start())
	exited := make(chan struct{})
	s.exited = exited
	cmd := s.cmd
	go func() { // owned by the server: ends when the process exits
		_ = cmd.Wait()
		close(exited)
	}()
	require.Eventually(s.tb, func() bool { return ping(s.Addr()) == nil },
		10*time.Second, 20*time.Millisecond, "redis-server on %s did not answer PING", s.Addr())
}

// ping sends PING to a Redis server in its wire protocol (RESP) and
// expects +PONG, without a client library (modules that use this package
// need not depend on go-redis).
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("e2etest: PING answered %q", line)
	}
	return nil
}

func (s *RedisServer) signal(sig syscall.Signal) {
	s.tb.Helper()
	require.NoError(s.tb, s.cmd.Process.Signal(sig))
}

// Pause stops the process (SIGSTOP): connections stay open, nothing
// answers.
func (s *RedisServer) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (s *RedisServer) Resume() { s.signal(syscall.SIGCONT) }

// Kill ends the process at once (SIGKILL) and waits for it.
func (s *RedisServer) Kill() {
	s.signal(syscall.SIGKILL)
	<-s.exited
}

func (s *RedisServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(os.Kill)
	<-s.exited
}
