package measure

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Kernel is a reading of the machine limits that bound how many
// connections one box can hold: open files per process and in total,
// ephemeral ports, listen backlogs, TCP buffer memory, the connection
// tracking table and free memory. Fields the machine does not expose are -1
// (for example the conntrack fields when the module is not loaded).
type Kernel struct {
	// NoFile and NoFileHard are RLIMIT_NOFILE of this process (children
	// inherit it): the most files, sockets included, one process may open.
	NoFile     int64 `json:"nofile"`
	NoFileHard int64 `json:"nofileHard"`
	// NrOpen is fs.nr_open, the ceiling a privileged process may raise
	// NoFileHard to.
	NrOpen int64 `json:"nrOpen"`
	// FileMax is fs.file-max and FilesOpen the first field of fs.file-nr:
	// open files on the whole machine.
	FileMax   int64 `json:"fileMax"`
	FilesOpen int64 `json:"filesOpen"`
	// PortLow and PortHigh are net.ipv4.ip_local_port_range: each source
	// address has PortHigh-PortLow+1 ports per destination.
	PortLow  int64 `json:"portLow"`
	PortHigh int64 `json:"portHigh"`
	// SoMaxConn (net.core.somaxconn) caps a listener's accept queue and
	// SynBacklog (net.ipv4.tcp_max_syn_backlog) its half-open connections.
	SoMaxConn  int64 `json:"somaxconn"`
	SynBacklog int64 `json:"synBacklog"`
	// TCPMem is net.ipv4.tcp_mem (pages: low, pressure, high) and
	// TCPMemUsed the pages TCP buffers hold now (/proc/net/sockstat).
	TCPMem     [3]int64 `json:"tcpMemPages"`
	TCPMemUsed int64    `json:"tcpMemUsedPages"`
	// TCPInUse and TCPTimeWait count the machine's TCP sockets now.
	TCPInUse    int64 `json:"tcpInUse"`
	TCPTimeWait int64 `json:"tcpTimeWait"`
	// MaxOrphans (net.ipv4.tcp_max_orphans) and MaxTimeWait
	// (net.ipv4.tcp_max_tw_buckets) bound closed sockets the kernel keeps.
	MaxOrphans  int64 `json:"maxOrphans"`
	MaxTimeWait int64 `json:"maxTimeWait"`
	// ConntrackMax and ConntrackCount are net.netfilter.nf_conntrack_max
	// and _count: a full table drops new connections.
	ConntrackMax   int64 `json:"conntrackMax"`
	ConntrackCount int64 `json:"conntrackCount"`
	// MemTotalMB and MemAvailableMB are from /proc/meminfo.
	MemTotalMB     int64 `json:"memTotalMB"`
	MemAvailableMB int64 `json:"memAvailableMB"`
}

// KernelSysctl names the /proc/sys files behind Kernel's settable fields,
// as sysctl spells them.
var KernelSysctl = struct {
	PortRange, SoMaxConn, SynBacklog, FileMax, ConntrackMax string
}{
	PortRange:    "net.ipv4.ip_local_port_range",
	SoMaxConn:    "net.core.somaxconn",
	SynBacklog:   "net.ipv4.tcp_max_syn_backlog",
	FileMax:      "fs.file-max",
	ConntrackMax: "net.netfilter.nf_conntrack_max",
}

// SysctlPath returns the /proc/sys file of a sysctl name.
func SysctlPath(name string) string {
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

// ReadKernel reads the limits of this machine and this process.
func ReadKernel() Kernel {
	k := Kernel{NoFile: -1, NoFileHard: -1}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		k.NoFile, k.NoFileHard = int64(rl.Cur), int64(rl.Max)
	}
	k.NrOpen = sysctlInts("fs.nr_open", 1)[0]
	k.FileMax = sysctlInts(KernelSysctl.FileMax, 1)[0]
	k.FilesOpen = sysctlInts("fs.file-nr", 1)[0]
	ports := sysctlInts(KernelSysctl.PortRange, 2)
	k.PortLow, k.PortHigh = ports[0], ports[1]
	k.SoMaxConn = sysctlInts(KernelSysctl.SoMaxConn, 1)[0]
	k.SynBacklog = sysctlInts(KernelSysctl.SynBacklog, 1)[0]
	copy(k.TCPMem[:], sysctlInts("net.ipv4.tcp_mem", 3))
	k.MaxOrphans = sysctlInts("net.ipv4.tcp_max_orphans", 1)[0]
	k.MaxTimeWait = sysctlInts("net.ipv4.tcp_max_tw_buckets", 1)[0]
	k.ConntrackMax = sysctlInts(KernelSysctl.ConntrackMax, 1)[0]
	k.ConntrackCount = sysctlInts("net.netfilter.nf_conntrack_count", 1)[0]
	k.TCPInUse, k.TCPTimeWait, k.TCPMemUsed = -1, -1, -1
	if data, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		k.TCPInUse, k.TCPTimeWait, k.TCPMemUsed = ParseSockstat(data)
	}
	k.MemTotalMB, k.MemAvailableMB = -1, -1
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		k.MemTotalMB, k.MemAvailableMB = ParseMeminfo(data)
	}
	return k
}

// Ports returns how many ephemeral ports one source address has per
// destination, or -1 when unknown.
func (k Kernel) Ports() int64 {
	if k.PortLow < 0 || k.PortHigh < k.PortLow {
		return -1
	}
	return k.PortHigh - k.PortLow + 1
}

// sysctlInts reads the first n whitespace-separated integers of a sysctl;
// missing or unreadable values are -1.
func sysctlInts(name string, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = -1
	}
	data, err := os.ReadFile(SysctlPath(name))
	if err != nil {
		return out
	}
	for i, f := range bytes.Fields(data) {
		if i >= n {
			break
		}
		if v, err := strconv.ParseInt(string(f), 10, 64); err == nil {
			out[i] = v
		}
	}
	return out
}

// ParseSockstat returns the TCP sockets in use, in TIME_WAIT and the pages
// of TCP buffer memory from the contents of /proc/net/sockstat (-1 each
// when absent).
func ParseSockstat(data []byte) (inuse, timeWait, memPages int64) {
	inuse, timeWait, memPages = -1, -1, -1
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			v, err := strconv.ParseInt(string(f[i+1]), 10, 64)
			if err != nil {
				continue
			}
			switch string(f[i]) {
			case "inuse":
				inuse = v
			case "tw":
				timeWait = v
			case "mem":
				memPages = v
			}
		}
	}
	return inuse, timeWait, memPages
}

// ParseMeminfo returns MemTotal and MemAvailable in MB from the contents
// of /proc/meminfo (-1 each when absent).
func ParseMeminfo(data []byte) (totalMB, availableMB int64) {
	totalMB, availableMB = -1, -1
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		switch string(f[0]) {
		case "MemTotal:":
			totalMB = kb / 1024
		case "MemAvailable:":
			availableMB = kb / 1024
		}
	}
	return totalMB, availableMB
}

// CountFDs returns how many files process pid has open, or -1.
func CountFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
