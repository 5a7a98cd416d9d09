package measure

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "1234 (tbserver) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 100 1000 200",
			3 * time.Second, false},
		{"command with spaces and parens", "99 (a) b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
			100 * time.Millisecond, false},
		{"no command", "garbage", 0, true},
		{"too short", "1 (x) S 1 2", 0, true},
		{"bad number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 3 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tt.stat))
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\ttbserver\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	rss, threads, err := ParseStatus([]byte(status))
	require.NoError(t, err)
	assert.Equal(t, uint64(12345*1024), rss)
	assert.Equal(t, 9, threads)

	_, _, err = ParseStatus([]byte("Name:\tx\nThreads:\t1\n"))
	assert.Error(t, err, "VmRSS is required")
}

func TestReadProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	s, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, s.RSS)
	assert.Positive(t, s.Threads)
}
