package measure

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcSample is a point-in-time reading of one process.
type ProcSample struct {
	// RSS is the resident set size in bytes (VmRSS).
	RSS uint64 `json:"rssBytes"`
	// CPU is user plus system CPU time consumed since the process started.
	CPU time.Duration `json:"cpuNs"`
	// Threads is the number of OS threads.
	Threads int `json:"threads"`
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, err
	}
	cpu, err := ParseStatCPU(stat)
	if err != nil {
		return ProcSample{}, err
	}
	rss, threads, err := ParseStatus(status)
	if err != nil {
		return ProcSample{}, err
	}
	return ProcSample{RSS: rss, CPU: cpu, Threads: threads}, nil
}

// ParseStatCPU returns utime+stime from the contents of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("measure: /proc stat has no command field")
	}
	// After ") " come fields 3 (state), 4, ...; utime is field 14 and stime
	// field 15, i.e. the 12th and 13th after the command.
	fields := bytes.Fields(stat[end+1:])
	if len(fields) < 13 {
		return 0, errors.New("measure: /proc stat is too short")
	}
	utime, err := strconv.ParseUint(string(fields[11]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("measure: utime: %w", err)
	}
	stime, err := strconv.ParseUint(string(fields[12]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("measure: stime: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// ParseStatus returns VmRSS in bytes and the thread count from the contents
// of /proc/<pid>/status.
func ParseStatus(status []byte) (rss uint64, threads int, err error) {
	var sawRSS bool
	for _, line := range bytes.Split(status, []byte{'\n'}) {
		key, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		fields := bytes.Fields(value)
		if len(fields) == 0 {
			continue
		}
		switch string(key) {
		case "VmRSS":
			kb, perr := strconv.ParseUint(string(fields[0]), 10, 64)
			if perr != nil {
				return 0, 0, fmt.Errorf("measure: VmRSS: %w", perr)
			}
			rss, sawRSS = kb*1024, true
		case "Threads":
			n, perr := strconv.Atoi(string(fields[0]))
			if perr != nil {
				return 0, 0, fmt.Errorf("measure: Threads: %w", perr)
			}
			threads = n
		}
	}
	if !sawRSS {
		return 0, 0, errors.New("measure: /proc status has no VmRSS")
	}
	return rss, threads, nil
}
