// Package serve runs a bench server process: it listens on the data and
// control addresses, announces them on one JSON line (Ready) so that the
// load generator that spawned the process can find them, serves until its
// context ends, then shuts both down.
package serve
