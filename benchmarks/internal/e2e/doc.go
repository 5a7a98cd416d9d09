// Package e2e holds the end-to-end tests of the benchmark harness: the load
// clients, driven through the child-process protocol, against each bench
// server on a real loopback listener, checking that every event arrives
// exactly once, in order, across reconnects. It has no non-test code.
package e2e
