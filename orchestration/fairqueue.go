package orchestration

import "sync"

// fairQueue holds the runs waiting for a worker, shared fairly between
// subjects (task owners): each subject has its own FIFO, and workers take
// the head of one subject's FIFO after another, round-robin over the
// subjects with runs waiting. A subject that queued a thousand runs thus
// delays another subject's next run by at most one run per other waiting
// subject, never by its whole backlog. Within a subject runs keep their
// order.
//
// size bounds the runs waiting over all subjects (ExecutorOptions.QueueSize).
// push and pop are O(1) and allocate nothing once the queue has seen as
// many subjects waiting at once as it ever will: the FIFOs are intrusive
// lists through run.next, and the FIFO of a subject left with nothing
// waiting goes to a free list.
//
// ready holds one token per pushed run (its capacity is size): a worker
// waits on it (next to the executor's stop channel) and then pops. The
// tokens never outnumber the runs waiting while the executor is open,
// since a token is taken before its pop; after Close, drain pops runs
// whose tokens stay behind, and a worker that takes such a token pops
// nothing. It is safe for concurrent use.
type fairQueue struct {
	ready chan struct{}

	mu       sync.Mutex // guards every field below, and run.next of queued runs
	size     int
	n        int // runs waiting
	subjects map[string]*subjectFIFO
	// head and tail are the serving order: the subjects with runs waiting,
	// linked through subjectFIFO.next. pop serves head and moves it to the
	// tail while it has more.
	head, tail *subjectFIFO
	free       *subjectFIFO // emptied FIFOs, linked through next, for reuse
}

// subjectFIFO is one subject's runs in the order they were pushed.
type subjectFIFO struct {
	subject     string
	first, last *run
	next        *subjectFIFO
}

func newFairQueue(size int) *fairQueue {
	return &fairQueue{ready: make(chan struct{}, size), size: size, subjects: make(map[string]*subjectFIFO)}
}

// push queues r at the end of its owner's FIFO and reports whether there
// was room.
func (q *fairQueue) push(r *run) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= q.size {
		return false
	}
	subject := r.task.OwnerID
	f := q.subjects[subject]
	if f == nil {
		if f = q.free; f != nil {
			q.free = f.next
			f.next = nil
		} else {
			f = &subjectFIFO{}
		}
		f.subject = subject
		q.subjects[subject] = f
		// A subject new to the serving order waits behind those in it.
		if q.tail == nil {
			q.head = f
		} else {
			q.tail.next = f
		}
		q.tail = f
	}
	r.next = nil
	if f.last == nil {
		f.first = r
	} else {
		f.last.next = r
	}
	f.last = r
	q.n++
	// Cannot block: tokens <= runs waiting <= size = cap(ready).
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pop takes the next run in the serving order, or nil when none waits.
func (q *fairQueue) pop() *run {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.head
	if f == nil {
		return nil
	}
	r := f.first
	f.first, r.next = r.next, nil
	q.n--
	q.head = f.next
	if q.head == nil {
		q.tail = nil
	}
	f.next = nil
	if f.first != nil {
		// More waiting: the subject's next turn is after every other's.
		if q.tail == nil {
			q.head = f
		} else {
			q.tail.next = f
		}
		q.tail = f
		return r
	}
	f.last = nil
	delete(q.subjects, f.subject)
	f.subject = ""
	f.next, q.free = q.free, f
	return r
}

// len returns the number of runs waiting.
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
