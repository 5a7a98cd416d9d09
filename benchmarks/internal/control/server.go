package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchwire"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

// maxTasksPerRequest bounds TasksRequest.Count.
const maxTasksPerRequest = 100_000

// Server is the control endpoint of one bench server. It is an
// http.Handler, safe for concurrent use; emissions on the same tasks must
// not overlap (the generator runs one at a time).
type Server struct {
	backend Backend
	mux     *http.ServeMux

	mu      sync.Mutex
	lastSeq map[string]uint64
}

// NewServer returns the control handler for backend.
func NewServer(backend Backend) *Server {
	s := &Server{backend: backend, mux: http.NewServeMux(), lastSeq: make(map[string]uint64)}
	s.mux.HandleFunc("GET /stats", s.handleStats)
	s.mux.HandleFunc("POST /tasks", s.handleTasks)
	s.mux.HandleFunc("POST /emit", s.handleEmit)
	s.mux.HandleFunc("POST /gc", s.handleGC)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// ReadStats reads this process's statistics and backend's extras.
func ReadStats(backend Backend) (Stats, error) {
	st := Stats{PID: os.Getpid(), Goroutines: runtime.NumGoroutine()}
	p, err := measure.ReadProc(st.PID)
	if err != nil {
		return st, err
	}
	st.RSS, st.CPU = p.RSS, p.CPU
	st.FDs = measure.CountFDs(st.PID)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.HeapInuse = ms.HeapInuse
	if x, ok := backend.(ExtraStats); ok {
		st.Extra = x.ExtraStats()
	}
	return st, nil
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	st, err := ReadStats(s.backend)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, st)
}

func (s *Server) handleTasks(w http.ResponseWriter, r *http.Request) {
	var req TasksRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Count < 1 || req.Count > maxTasksPerRequest {
		http.Error(w, fmt.Sprintf("count must be 1..%d", maxTasksPerRequest), http.StatusBadRequest)
		return
	}
	ids, err := s.backend.CreateTasks(r.Context(), req.Count)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, TasksResponse{TaskIDs: ids})
}

func (s *Server) handleEmit(w http.ResponseWriter, r *http.Request) {
	var req EmitRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.TaskIDs) == 0 || req.EventsPerTask < 0 {
		http.Error(w, "taskIds and a non-negative eventsPerTask are required", http.StatusBadRequest)
		return
	}
	writeJSON(w, s.Emit(r.Context(), req))
}

func (s *Server) handleGC(w http.ResponseWriter, _ *http.Request) {
	runtime.GC()
	debug.FreeOSMemory()
	w.WriteHeader(http.StatusNoContent)
}

// DefaultEmitWorkers is EmitRequest.Workers when zero.
const DefaultEmitWorkers = 8

// Emit runs an emission and returns when every event has been appended or
// ctx ended. A scheduler hands each event, when due, to one of
// req.Workers appending goroutines chosen by its task, so each task's events
// are appended in order while tasks on a slow store (Redis round trips)
// proceed in parallel. A worker that falls behind catches up without
// sleeping; the worst delay between an event's due time and its append is
// reported as MaxLag.
func (s *Server) Emit(ctx context.Context, req EmitRequest) EmitResult {
	sched := Schedule{Tasks: len(req.TaskIDs), PerTask: req.EventsPerTask, Rate: req.RatePerTask}
	seqs := make([]uint64, len(req.TaskIDs))
	s.mu.Lock()
	for i, id := range req.TaskIDs {
		seqs[i] = s.lastSeq[id]
	}
	s.mu.Unlock()

	workers := req.Workers
	if workers <= 0 {
		workers = DefaultEmitWorkers
	}
	workers = min(workers, max(len(req.TaskIDs), 1))
	type job struct {
		task int
		due  time.Duration
	}
	results := make([]EmitResult, workers)
	queues := make([]chan job, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range queues {
		queues[w] = make(chan job, 1024)
		wg.Add(1)
		go func(q <-chan job, res *EmitResult) {
			defer wg.Done()
			for j := range q {
				if ctx.Err() != nil {
					continue // drain: the emission was called off
				}
				if lag := time.Since(start) - j.due; lag > res.MaxLag {
					res.MaxLag = lag
				}
				// seqs[j.task] belongs to this worker: a task always maps to
				// the same worker.
				draft, err := benchwire.Draft(seqs[j.task]+1, time.Now())
				if err == nil {
					err = s.backend.Append(ctx, req.TaskIDs[j.task], draft)
				}
				if err != nil {
					res.Errors++
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
					continue
				}
				seqs[j.task]++
				res.Appended++
			}
		}(queues[w], &results[w])
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	total := sched.Total()
dispatch:
	for k := 0; k < total && ctx.Err() == nil; {
		now := time.Since(start)
		if due := sched.Due(k); due > now {
			timer.Reset(due - now)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break dispatch
			}
			continue
		}
		for ; k < total && sched.Due(k) <= now; k++ {
			i := sched.Task(k)
			select {
			case queues[i%workers] <- job{task: i, due: sched.Due(k)}:
			case <-ctx.Done():
				break dispatch
			}
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()

	var res EmitResult
	for _, r := range results {
		res.Appended += r.Appended
		res.Errors += r.Errors
		res.MaxLag = max(res.MaxLag, r.MaxLag)
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
	}
	res.Elapsed = time.Since(start)
	if err := ctx.Err(); err != nil && res.FirstError == "" {
		res.FirstError = err.Error()
	}
	res.LastSeq = make(map[string]uint64, len(req.TaskIDs))
	s.mu.Lock()
	for i, id := range req.TaskIDs {
		s.lastSeq[id] = seqs[i]
		res.LastSeq[id] = seqs[i]
	}
	s.mu.Unlock()
	return res
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
