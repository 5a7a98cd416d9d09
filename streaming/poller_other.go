//go:build !linux

package streaming

import (
	"errors"
	"net"
	"syscall"
)

// Without epoll, connections are never detached: each stream keeps the
// goroutine that reads its connection (see session modes).
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("taskbridge: no poller on this platform") }

func detach(net.Conn) (net.Conn, bool) { return nil, false }

func (*poller) add(*session) error { return errors.New("taskbridge: no poller") }
func (*poller) remove(*session)    {}
func (*poller) run()               {}
func (*poller) stop()              {}

func readNow(syscall.RawConn, []byte) (int, bool, error) { return 0, true, nil }
