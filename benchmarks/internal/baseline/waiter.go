package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// blockingReader is the store primitive the baseline loops on: read up to
// limit events after after, waiting up to timeout for the first one.
type blockingReader interface {
	WaitRead(ctx context.Context, taskID string, after contracts.EventID, limit int, timeout time.Duration) ([]contracts.TaskEvent, error)
}

// memReader gives the memory store a blocking read: a waiter registers on
// its task's change channel, reads, and when nothing is there waits for the
// channel (closed by the store's change feed) or the timeout, then reads
// again. Each waiting connection does its own reads.
type memReader struct {
	events contracts.EventStore

	mu    sync.Mutex
	chans map[string]chan struct{}
}

func newMemReader(events contracts.EventStore) *memReader {
	return &memReader{events: events, chans: make(map[string]chan struct{})}
}

// run feeds the change channels until ctx ends.
func (m *memReader) run(ctx context.Context) error {
	return m.events.Listen(ctx, func(c contracts.Change) {
		m.mu.Lock()
		if c.Resync {
			for id, ch := range m.chans {
				close(ch)
				delete(m.chans, id)
			}
		} else if ch, ok := m.chans[c.TaskID]; ok {
			close(ch)
			delete(m.chans, c.TaskID)
		}
		m.mu.Unlock()
	})
}

func (m *memReader) changed(taskID string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.chans[taskID]
	if !ok {
		ch = make(chan struct{})
		// The key outlives the request: Fiber's strings alias its buffers.
		m.chans[strings.Clone(taskID)] = ch
	}
	return ch
}

// WaitRead implements blockingReader.
func (m *memReader) WaitRead(ctx context.Context, taskID string, after contracts.EventID, limit int, timeout time.Duration) ([]contracts.TaskEvent, error) {
	ch := m.changed(taskID)
	page, err := m.events.Read(ctx, taskID, after, limit)
	if err != nil || len(page.Events) > 0 || timeout <= 0 {
		return page.Events, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	page, err = m.events.Read(ctx, taskID, after, limit)
	return page.Events, err
}

// redisReader is one XREAD BLOCK per waiting connection on the task's
// stream. The key layout is redisstore's (README.md there):
// <prefix>{<taskId>}:events, entries with fields type, createdAt (unix ms)
// and payload.
type redisReader struct {
	client *redis.Client
	prefix string
}

// WaitRead implements blockingReader.
func (r *redisReader) WaitRead(ctx context.Context, taskID string, after contracts.EventID, limit int, timeout time.Duration) ([]contracts.TaskEvent, error) {
	block := time.Duration(-1)
	if timeout > 0 {
		block = max(timeout, time.Millisecond)
	}
	streams, err := r.client.XRead(ctx, &redis.XReadArgs{
		Streams: []string{r.prefix + "{" + taskID + "}:events", after.String()},
		Count:   int64(limit),
		Block:   block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []contracts.TaskEvent
	for _, s := range streams {
		for _, m := range s.Messages {
			ev, err := decodeMessage(taskID, m)
			if err != nil {
				return out, err
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

func decodeMessage(taskID string, m redis.XMessage) (contracts.TaskEvent, error) {
	id, err := contracts.ParseEventID(m.ID)
	if err != nil {
		return contracts.TaskEvent{}, err
	}
	typ, _ := m.Values["type"].(string)
	created, _ := m.Values["createdAt"].(string)
	payload, _ := m.Values["payload"].(string)
	ms, err := strconv.ParseInt(created, 10, 64)
	if err != nil || typ == "" || payload == "" {
		return contracts.TaskEvent{}, fmt.Errorf("baseline: malformed stream entry %s", m.ID)
	}
	return contracts.TaskEvent{Type: contracts.EventType(typ), TaskID: taskID, EventID: id,
		CreatedAt: time.UnixMilli(ms).UTC(), Payload: json.RawMessage(payload)}, nil
}
