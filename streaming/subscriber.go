package streaming

import (
	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// subState is where a subscriber's events come from.
type subState uint8

const (
	subCatchup subState = iota // its writer reads the store by its cursor
	subLive                    // it receives the hub's batches
)

// subscriber is one task followed by one connection: an SSE stream has
// one, a WebSocket one per task it subscribed to. The hub owns it: its
// registration, live state and queue change only through the task's
// methods (taskState.add, remove, join, offer), which hold the task's lock
// and then the connection's; the connection's writer takes what was
// queued and advances the cursor.
type subscriber struct {
	conn   *conn  // immutable
	taskID string // immutable

	// task is set by taskState.add before the subscriber is visible to
	// the hub and never changes afterwards.
	task *taskState
	// idx is the subscriber's position in task.subs, -1 when it is not
	// registered. Guarded by task.mu.
	idx int32

	// Guarded by conn.mu. state and the ring's tail change only in the
	// task's methods (task.mu held as well); the writer takes from the
	// head.
	state subState
	// retrying: a catch-up read failed and a retry timer will restart the
	// writer. Guarded by conn.mu.
	retrying bool
	// end: the hub ended the subscriber (one of subEnds), for the writer
	// of a multi-task connection to report. Guarded by conn.mu.
	end   uint8
	q     []*batch // ring of live batches waiting for the writer
	qHead int32
	qLen  int32

	// Owned by the connection's writer (one writer runs at a time; the
	// connection goroutine sets them before the writer first runs).
	cursor    contracts.EventID // the last event id written
	replaying bool              // still reading what existed at the start
	done      bool              // multi-task: its stream ended with this write
	// initialUnseen: initial was read before the subscriber was
	// registered, so a change notice in between may have found nobody to
	// record it (see taskState.join).
	initialUnseen bool
	initialLimit  int
	delivered     int32 // events written since the last report (flush)
	initial       *contracts.EventPage
	fail          backoff // failed catch-up reads in a row
}

func newSubscriber(c *conn, taskID string, cursor contracts.EventID, queueSize int) *subscriber {
	return &subscriber{
		conn:      c,
		taskID:    taskID,
		idx:       -1,
		q:         make([]*batch, queueSize),
		cursor:    cursor,
		replaying: true,
	}
}

// needsRead reports whether the writer must read the store for the
// subscriber: it is catching up, nothing of it is queued and no retry is
// pending. Call with conn.mu held.
func (s *subscriber) needsRead() bool {
	return s.state == subCatchup && s.qLen == 0 && !s.retrying
}

// format is the subscriber's wire format, its connection's.
func (s *subscriber) format() uint8 { return s.conn.format }

// pending returns the ring position of what is queued. Call with conn.mu
// held; the batches there stay put until taken.
func (s *subscriber) pending() (head, n int) { return int(s.qHead), int(s.qLen) }

// taken forgets the n batches from head the writer has written (or
// dropped). Call with conn.mu held.
func (s *subscriber) taken(head, n int) {
	for i := range n {
		s.q[(head+i)%len(s.q)] = nil
	}
	s.qHead = int32((head + n) % len(s.q))
	s.qLen -= int32(n)
}

// at returns the i-th queued batch from head.
func (s *subscriber) at(head, i int) *batch { return s.q[(head+i)%len(s.q)] }

// push queues b, or reports false when the ring is full. Call with
// conn.mu held (and the task's, as its methods do).
func (s *subscriber) push(b *batch) bool {
	if int(s.qLen) == len(s.q) {
		return false
	}
	s.q[(int(s.qHead)+int(s.qLen))%len(s.q)] = b
	s.qLen++
	return true
}
