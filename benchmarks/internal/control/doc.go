// Package control is the side channel between the load generator and a
// bench server (bridge, baseline or raw). Each bench server serves it on a
// separate loopback port with net/http, away from the data path it measures:
//
//	GET  /stats  the server's pid, goroutines, RSS and CPU time (Stats)
//	POST /tasks  create tasks to subscribe to (TasksRequest -> TasksResponse)
//	POST /emit   append benchmark events at a rate (EmitRequest -> EmitResult)
//	POST /gc     run the garbage collector and return memory to the OS
//
// The emitter numbers each task's events 1, 2, 3, ... and stamps each with
// the time taken just before its append (see benchwire), so that clients can
// measure append-to-receive latency and count gaps and duplicates. Server
// is the handler; Client calls it.
package control
