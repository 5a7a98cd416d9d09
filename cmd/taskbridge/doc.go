// Command taskbridge is a command-line client of any TaskBridge v1 server
// (this library's fiberbridge, or taskbridge-fastapi), built on package
// client.
//
//	taskbridge watch <taskId>           follow a task
//	taskbridge create -type T [-input JSON] [-attach FILE]... [-watch]
//	taskbridge approve <taskId>         approve its open suspension (reject: taskbridge reject)
//	taskbridge cancel <taskId> [-reason R]
//
// Every command takes -url (env TASKBRIDGE_URL, default
// http://127.0.0.1:8080), -token (env TASKBRIDGE_TOKEN, sent as a bearer
// token) and -transports (env TASKBRIDGE_TRANSPORTS, e.g. "sse,poll").
//
// In a terminal, watch draws a progress bar with the percentage, the
// task's state, its stage and message, and the transport in use; messages,
// the suspension and the outcome are printed above it. When the task
// suspends and standard input is a terminal, it asks for one of the
// allowed actions and submits it (-no-prompt turns that off; an empty line
// skips). When standard output is not a terminal (or with -plain) it
// writes one line per event instead: "TASK_PROGRESS 40% working: step 2 of 5".
//
// Exit codes: 0 the task completed (or the command succeeded), 1 an error
// (server unreachable, refused credentials, unknown task, ...), 2 a bad
// command line, 3 the task failed, 4 the task was cancelled, 130
// interrupted.
package main
