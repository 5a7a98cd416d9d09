//go:build !linux

package e2etest

import "net"

// StalledDialer returns a plain dialer where receive buffers cannot be set
// before the handshake; tests that need a full window still pass, only
// more slowly.
func StalledDialer() *net.Dialer { return &net.Dialer{} }
