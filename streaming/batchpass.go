package streaming

import (
	"context"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// batchRound is one fan-out worker's scratch space for batched passes,
// reused from round to round: slot i holds the task whose read is reqs[i],
// as nextRead started it.
type batchRound struct {
	tasks []*taskState
	reads []fanoutRead
	reqs  []contracts.ReadRequest
	pages []contracts.EventPage
	errs  []error
	carry []*taskState // tasks whose pass goes on next round
}

func newBatchRound(n int) *batchRound {
	return &batchRound{
		tasks: make([]*taskState, 0, n),
		reads: make([]fanoutRead, 0, n),
		reqs:  make([]contracts.ReadRequest, 0, n),
		pages: make([]contracts.EventPage, n),
		errs:  make([]error, n),
		carry: make([]*taskState, 0, n),
	}
}

// add queues the next read of t's pass, or does nothing when the pass is
// over (nextRead then cleared t's running mark).
func (r *batchRound) add(t *taskState, limit int) {
	rd, ok := t.nextRead()
	if !ok {
		return
	}
	r.tasks = append(r.tasks, t)
	r.reads = append(r.reads, rd)
	r.reqs = append(r.reqs, contracts.ReadRequest{TaskID: t.id, After: rd.after, Limit: limit})
}

// workBatches is work for a store that reads batches. Each round gathers
// the next read of up to cfg.readBatch passes (first the passes of the
// previous round that go on, then tasks off the run queue), makes all of
// them with one ReadBatch, and completes each as pass does after its
// Read: every task's pass runs exactly the steps it would alone (position
// checks, rewinds, more, forgetting vanished notices, per-task retries),
// only its reads share round trips with other tasks'.
func (h *Hub) workBatches(ctx context.Context) {
	n := h.cfg.readBatch
	r := newBatchRound(n)
	var starts []*conn
	for {
		for _, t := range r.carry {
			r.add(t, h.cfg.liveBatch)
		}
		clear(r.carry)
		r.carry = r.carry[:0]
		for len(r.reqs) < n {
			t := h.queue.pop()
			if t == nil {
				break
			}
			r.add(t, h.cfg.liveBatch)
		}
		if len(r.reqs) == 0 {
			select {
			case <-h.queue.kick:
				continue
			case <-ctx.Done():
				return
			}
		}

		h.cfg.metrics.IncCounter(observe.MetricStoreReads, float64(len(r.reqs)), readTagsFanout...)
		h.batch.ReadBatch(ctx, r.reqs, r.pages, r.errs)
		for i, t := range r.tasks {
			var more bool
			more, starts = h.readDone(ctx, t, r.reads[i], r.pages[i], r.errs[i], starts)
			if more {
				r.carry = append(r.carry, t)
			}
			r.pages[i], r.errs[i] = contracts.EventPage{}, nil
		}
		clear(r.tasks)
		r.tasks, r.reads, r.reqs = r.tasks[:0], r.reads[:0], r.reqs[:0]
	}
}
