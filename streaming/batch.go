package streaming

import (
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// frame is one event encoded once per wire format. It is immutable once
// built and shared by every subscriber that receives it.
type frame struct {
	id       contracts.EventID
	created  time.Time
	terminal bool
	enc      [numFormats][]byte // by format; nil until the batch encoded it
}

// batch is one fan-out read of a task, encoded once per wire format and
// handed by pointer to every live subscriber's queue. Encodings are added
// under the task's lock (encode) and read by writers after they dequeued
// the batch, so they never change while a writer can see them.
type batch struct {
	events  []contracts.TaskEvent
	frames  []frame
	encoded [numFormats]bool
	last    contracts.EventID
}

func newBatch(events []contracts.TaskEvent) *batch {
	b := &batch{events: events, frames: make([]frame, len(events))}
	for i := range events {
		ev := &events[i]
		b.frames[i] = frame{id: ev.EventID, created: ev.CreatedAt, terminal: ev.Type.IsTerminal()}
	}
	b.last = events[len(events)-1].EventID
	return b
}

// estimate is a generous size of one encoding of the batch, so the arena
// rarely grows. Growth stays correct: earlier frames keep pointing into the
// old array, which is never written again.
func (b *batch) estimate() int {
	n := 0
	for i := range b.events {
		ev := &b.events[i]
		n += len(ev.Payload) + len(ev.TaskID) + len(ev.Type) + 160
	}
	return n
}

// encode adds the encodings the batch lacks for the formats in need, each
// into one arena.
func (b *batch) encode(formats *[numFormats]wireFormat, need [numFormats]bool) {
	for f, wire := range formats {
		if !need[f] || b.encoded[f] {
			continue
		}
		arena := make([]byte, 0, b.estimate())
		for i := range b.events {
			start := len(arena)
			arena = wire.appendEvent(arena, &b.events[i])
			b.frames[i].enc[f] = arena[start:len(arena):len(arena)]
		}
		b.encoded[f] = true
	}
}
