//go:build unix

package connlimit

import "syscall"

// openFileLimit is the soft RLIMIT_NOFILE (which the Go runtime raises to
// the hard limit at start on most systems).
func openFileLimit() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	const maxInt = int(^uint(0) >> 1)
	if rl.Cur > uint64(maxInt) {
		return maxInt, nil
	}
	return int(rl.Cur), nil
}
