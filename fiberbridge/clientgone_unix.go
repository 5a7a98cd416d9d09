//go:build unix

package fiberbridge

import "syscall"

// peek reads without consuming and without blocking.
func peek(fd uintptr, buf []byte) (int, error) {
	n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}
