package control

import (
	"context"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Backend is what a bench server plugs into the control Server.
type Backend interface {
	// CreateTasks creates n tasks that the generator's token may subscribe
	// to and returns their ids.
	CreateTasks(ctx context.Context, n int) ([]string, error)
	// Append appends one event to a task, the way the server's executor
	// would.
	Append(ctx context.Context, taskID string, draft contracts.EventDraft) error
}

// ExtraStats is implemented by backends with more to report (for example
// the Redis connections they hold); Stats.Extra carries it.
type ExtraStats interface {
	ExtraStats() map[string]float64
}

// Stats is a point-in-time reading of a bench server.
type Stats struct {
	PID        int           `json:"pid"`
	Goroutines int           `json:"goroutines"`
	RSS        uint64        `json:"rssBytes"`
	CPU        time.Duration `json:"cpuNs"`
	HeapInuse  uint64        `json:"heapInuseBytes"`
	// FDs is how many files the process has open (-1: unknown).
	FDs   int                `json:"fds"`
	Extra map[string]float64 `json:"extra,omitempty"`
}

// TasksRequest asks for Count new tasks.
type TasksRequest struct {
	Count int `json:"count"`
}

// TasksResponse lists the created tasks.
type TasksResponse struct {
	TaskIDs []string `json:"taskIds"`
}

// EmitRequest asks the server to append EventsPerTask events to each of
// TaskIDs, RatePerTask events per second per task (<= 0: as fast as
// possible), interleaving the tasks evenly over time.
type EmitRequest struct {
	TaskIDs       []string `json:"taskIds"`
	EventsPerTask int      `json:"eventsPerTask"`
	RatePerTask   float64  `json:"ratePerTask"`
	// Workers is how many goroutines append concurrently (each task's
	// events stay in order on one of them). Default: DefaultEmitWorkers.
	Workers int `json:"workers,omitempty"`
}

// EmitResult reports an emission. LastSeq is each task's last successfully
// appended sequence number, over all emissions so far: a subscriber that
// started before the first emission must end with exactly that many events.
type EmitResult struct {
	Appended   int               `json:"appended"`
	Errors     int               `json:"errors"`
	FirstError string            `json:"firstError,omitempty"`
	Elapsed    time.Duration     `json:"elapsedNs"`
	MaxLag     time.Duration     `json:"maxLagNs"`
	LastSeq    map[string]uint64 `json:"lastSeq"`
}
