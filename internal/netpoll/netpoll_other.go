//go:build !linux

package netpoll

import (
	"errors"
	"net"
	"syscall"
)

// Poller does not exist off Linux: New fails, and connections are never
// detached (each stream keeps the goroutine that reads its connection).
type Poller struct{}

// New fails: there is no poller on this platform.
func New() (*Poller, error) { return nil, errors.New("taskbridge: no poller on this platform") }

// Detach refuses every connection on this platform.
func Detach(net.Conn) (net.Conn, bool) { return nil, false }

// Add fails: there is no poller on this platform.
func (*Poller) Add(syscall.Conn, Handler) (Key, error) {
	return Key{}, errors.New("taskbridge: no poller")
}

// Remove does nothing.
func (*Poller) Remove(Key) {}

// Run returns at once.
func (*Poller) Run() {}

// Stop does nothing.
func (*Poller) Stop() {}

// ReadNow reports the end of input.
func ReadNow(syscall.RawConn, []byte) (int, bool, error) { return 0, true, nil }

// Watched returns 0: there is nothing to watch.
func (*Poller) Watched() int { return 0 }
