//go:build !linux

package streaming_test

import "net"

// slowReaderDialer is the default dialer where socket options differ; the
// stall tests then need the kernel's default buffers to fill.
func slowReaderDialer() *net.Dialer { return &net.Dialer{} }
