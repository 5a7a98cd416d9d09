package measure

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseSockstat(t *testing.T) {
	data := []byte("sockets: used 4018\nTCP: inuse 4000 orphan 0 tw 7091 alloc 4000 mem 222\nUDP: inuse 0 mem 0\n")
	inuse, tw, mem := ParseSockstat(data)
	assert.Equal(t, []int64{4000, 7091, 222}, []int64{inuse, tw, mem})
	inuse, tw, mem = ParseSockstat([]byte("UDP: inuse 3 mem 1\n"))
	assert.Equal(t, []int64{-1, -1, -1}, []int64{inuse, tw, mem}, "no TCP line: unknown, not 0")
}

func TestParseMeminfo(t *testing.T) {
	total, avail := ParseMeminfo([]byte("MemTotal:       24683520 kB\nMemFree:        23151616 kB\nMemAvailable:   24119296 kB\n"))
	assert.Equal(t, int64(24105), total)
	assert.Equal(t, int64(23554), avail)
	total, avail = ParseMeminfo(nil)
	assert.Equal(t, []int64{-1, -1}, []int64{total, avail})
}

func TestReadKernel(t *testing.T) {
	k := ReadKernel()
	assert.Positive(t, k.NoFile)
	assert.Positive(t, k.Ports())
	assert.Positive(t, k.SoMaxConn)
	assert.Positive(t, k.MemAvailableMB)
	assert.Positive(t, CountFDs(os.Getpid()), "a test process has files open")
	assert.Equal(t, "/proc/sys/net/core/somaxconn", SysctlPath("net.core.somaxconn"))
}
