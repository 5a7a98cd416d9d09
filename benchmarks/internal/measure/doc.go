// Package measure holds the load generator's measuring instruments: a
// concurrent log-linear latency histogram with exact count, min and max, a
// per-subscriber sequence tracker that counts gaps and duplicates, readers
// for a process's CPU time, resident memory and open files from /proc, and
// a reading of the kernel limits that bound how many connections one
// machine holds (Kernel).
//
// Nothing here knows about HTTP, the wire protocol or the scenarios, so the
// arithmetic is unit-tested on its own.
package measure
