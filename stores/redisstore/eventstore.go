package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// EventStore is the contracts.EventStore on Redis Streams: one stream per
// task, the stream id is the event id, history is read with XRANGE from an
// exclusive start, and every append is PUBLISHed on one instance-wide
// channel that the change feed (Listen) subscribes to with a single
// connection per EventStore.
//
// An EventStore is safe for concurrent use. It does not own the Redis
// client; it holds no goroutine except while Listen runs.
type EventStore struct {
	client redis.UniversalClient
	cfg    config
	keys   keys
	feed   *feed
}

var (
	_ contracts.EventStore = (*EventStore)(nil)
	_ contracts.ChangeFeed = (*EventStore)(nil)
)

func newEventStore(client redis.UniversalClient, cfg config) *EventStore {
	k := keys{prefix: cfg.prefix}
	return &EventStore{
		client: client,
		cfg:    cfg,
		keys:   k,
		feed:   newFeed(client, k.channel(), cfg),
	}
}

// Append implements contracts.EventStore. The event's id is assigned by
// Redis (XADD *), its CreatedAt is the store clock truncated to
// milliseconds. It returns an error wrapping contracts.ErrInvalidPayload
// for the zero draft, contracts.ErrTerminal once the task's terminal event
// is stored, and the Redis error otherwise.
//
// The idempotency key of the draft is checked and recorded in the same
// script as the append (a hash per task, P{task}:appends, and a field of
// the stream entry), so a retry of an append that was in fact applied (by
// the caller, or by the Redis client after a timeout) answers the stored
// event. The key lives as long as its event: trimming by MaxEventsPerTask
// forgets it, and it expires with the task's other keys (ActiveTTL while
// the task runs, TerminalTTL after it ended).
func (s *EventStore) Append(ctx context.Context, taskID string, draft contracts.EventDraft) (contracts.TaskEvent, error) {
	if draft.IsZero() {
		return contracts.TaskEvent{}, fmt.Errorf("redisstore: append to %q: %w: zero draft", taskID, contracts.ErrInvalidPayload)
	}
	if taskID == "" {
		return contracts.TaskEvent{}, errors.New("redisstore: append: empty task id")
	}
	created := time.UnixMilli(s.cfg.now().UnixMilli()).UTC()
	terminal := "0"
	if draft.Type().IsTerminal() {
		terminal = "1"
	}
	payload := draft.Payload()
	res, err := appendScript.Run(ctx, s.client,
		[]string{s.keys.events(taskID), s.keys.meta(taskID), s.keys.task(taskID), s.keys.appends(taskID)},
		string(draft.Type()), created.UnixMilli(), []byte(payload), terminal,
		s.cfg.maxEvents, s.cfg.trimSlack, ms(s.cfg.activeTTL), ms(s.cfg.terminalTTL),
		s.keys.channel(), taskID, draft.IdempotencyKey(),
	).StringSlice()
	if err != nil {
		return contracts.TaskEvent{}, fmt.Errorf("redisstore: append to %q: %w", taskID, err)
	}
	switch {
	case len(res) == 2 && res[0] == "terminal":
		return contracts.TaskEvent{}, fmt.Errorf("redisstore: append to %q after its terminal event %s: %w", taskID, res[1], contracts.ErrTerminal)
	case len(res) == 5 && res[0] == "held":
		var ev contracts.TaskEvent
		if err := decodeEntry(&ev, taskID, []any{res[1], res[2], res[3], res[4]}); err != nil {
			return contracts.TaskEvent{}, fmt.Errorf("redisstore: append to %q: held event: %w", taskID, err)
		}
		return ev, nil
	case len(res) != 2 || res[0] != "ok":
		return contracts.TaskEvent{}, fmt.Errorf("redisstore: append to %q: unexpected reply %q", taskID, res)
	}
	id, err := contracts.ParseEventID(res[1])
	if err != nil {
		return contracts.TaskEvent{}, fmt.Errorf("redisstore: append to %q: stream id: %w", taskID, err)
	}
	return contracts.TaskEvent{
		Type:      draft.Type(),
		TaskID:    taskID,
		EventID:   id,
		CreatedAt: created,
		Payload:   payload,
	}, nil
}

// Read implements contracts.EventStore: up to limit events strictly after
// after (from the oldest retained when after is zero). RetentionGap is set
// when trimming dropped an event after the cursor; Ended when the task's
// terminal event is the last returned event or at or before the cursor. A
// limit of zero or less returns no events but still reports Ended and
// RetentionGap. A task without events (or whose keys expired) reads as an
// empty page.
func (s *EventStore) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	if taskID == "" {
		return contracts.EventPage{}, nil // Append never stores one
	}
	var buf [48]byte
	raw, err := readScript.Run(ctx, s.client,
		[]string{s.keys.events(taskID), s.keys.meta(taskID)}, readStart(buf[:0], after), max(limit, 0)).Slice()
	if err != nil {
		return contracts.EventPage{}, fmt.Errorf("redisstore: read %q: %w", taskID, err)
	}
	return decodePage(taskID, after, raw)
}

// ReadTask returns the task's record, as TaskRegistry.Get returns it
// (contracts.ErrNotFound for a missing task), and the page Read returns,
// read together in one round trip (one script: the record and the log
// share a hash tag). The polling service reads this way when the event
// store can, so a poll costs one round trip.
func (s *EventStore) ReadTask(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.TaskRecord, contracts.EventPage, error) {
	if taskID == "" {
		return contracts.TaskRecord{}, contracts.EventPage{}, notFound("task", taskID)
	}
	var buf [48]byte
	raw, err := readTaskScript.Run(ctx, s.client,
		[]string{s.keys.events(taskID), s.keys.meta(taskID), s.keys.task(taskID)},
		readStart(buf[:0], after), max(limit, 0)).Slice()
	if err != nil {
		return contracts.TaskRecord{}, contracts.EventPage{}, fmt.Errorf("redisstore: read task %q: %w", taskID, err)
	}
	if len(raw) < len(taskFields) {
		if len(raw) == 1 && raw[0] == nil {
			return contracts.TaskRecord{}, contracts.EventPage{}, notFound("task", taskID)
		}
		return contracts.TaskRecord{}, contracts.EventPage{}, fmt.Errorf("redisstore: read task %q: unexpected reply of %d items", taskID, len(raw))
	}
	task, err := decodeTask(taskID, raw[:len(taskFields)])
	if err != nil {
		return contracts.TaskRecord{}, contracts.EventPage{}, err
	}
	page, err := decodePage(taskID, after, raw[len(taskFields):])
	if err != nil {
		return contracts.TaskRecord{}, contracts.EventPage{}, err
	}
	return task, page, nil
}

// readStart returns the XRANGE start of a read after after: "-" for the
// zero cursor, else the exclusive "(<id>". buf is scratch space.
func readStart(buf []byte, after contracts.EventID) string {
	if after.IsZero() {
		return "-"
	}
	return string(after.AppendText(append(buf, '(')))
}

// decodePage turns readScript's reply for a read of taskID after after
// into the page Read returns; on any malformed part it returns an error
// and no page.
func decodePage(taskID string, after contracts.EventID, raw []any) (contracts.EventPage, error) {
	if len(raw) < 2 || (len(raw)-2)%4 != 0 {
		return contracts.EventPage{}, fmt.Errorf("redisstore: read %q: unexpected reply of %d items", taskID, len(raw))
	}
	terminal, err := optionalID(raw[0])
	if err != nil {
		return contracts.EventPage{}, fmt.Errorf("redisstore: read %q: terminal marker: %w", taskID, err)
	}
	trimmed, err := optionalID(raw[1])
	if err != nil {
		return contracts.EventPage{}, fmt.Errorf("redisstore: read %q: trim marker: %w", taskID, err)
	}
	var page contracts.EventPage
	if n := (len(raw) - 2) / 4; n > 0 {
		page.Events = make([]contracts.TaskEvent, n)
		for i := range page.Events {
			if err := decodeEntry(&page.Events[i], taskID, raw[2+4*i:6+4*i]); err != nil {
				return contracts.EventPage{}, fmt.Errorf("redisstore: read %q: %w", taskID, err)
			}
		}
	}
	page.RetentionGap = !trimmed.IsZero() && after.Less(trimmed)
	if !terminal.IsZero() {
		last := after
		if n := len(page.Events); n > 0 {
			last = page.Events[n-1].EventID
		}
		page.Ended = terminal.Compare(last) <= 0
	}
	return page, nil
}

// Listen implements contracts.ChangeFeed. All Listen calls of one
// EventStore share one Redis subscription, opened by the first call and
// closed when the last returns. fn is called from the feed's goroutine,
// never after Listen has returned; it receives Change{Resync: true} when
// notices may have been lost: when the subscription is (re)established
// after fn was registered while it was down, and after every reconnect.
// Listen returns ctx.Err() when ctx ends, or an error wrapping
// redis.ErrClosed when the client is closed under it. While Redis is
// unreachable Listen keeps retrying; its return after ctx ends can then be
// delayed by the client's dial or read timeout.
func (s *EventStore) Listen(ctx context.Context, fn func(contracts.Change)) error {
	if fn == nil {
		return errors.New("redisstore: Listen needs a callback")
	}
	return s.feed.listen(ctx, fn)
}

func optionalID(v any) (contracts.EventID, error) {
	s, ok := v.(string)
	if !ok || s == "" {
		return contracts.EventID{}, nil
	}
	return contracts.ParseEventID(s)
}

// decodeEntry fills ev from one event of the read reply: id, type,
// createdAt (unix ms), payload. The payload bytes are returned exactly as
// appended.
func decodeEntry(ev *contracts.TaskEvent, taskID string, f []any) error {
	idText, _ := f[0].(string)
	id, err := contracts.ParseEventID(idText)
	if err != nil {
		return fmt.Errorf("stream entry id: %w", err)
	}
	typ, _ := f[1].(string)
	created, _ := f[2].(string)
	payload, _ := f[3].(string)
	if typ == "" || payload == "" {
		return fmt.Errorf("entry %s lacks its type or payload", idText)
	}
	msec, err := strconv.ParseInt(created, 10, 64)
	if err != nil {
		return fmt.Errorf("entry %s: createdAt %q: %w", idText, created, err)
	}
	*ev = contracts.TaskEvent{
		Type:      contracts.EventType(typ),
		TaskID:    taskID,
		EventID:   id,
		CreatedAt: time.UnixMilli(msec).UTC(),
		Payload:   json.RawMessage(payload),
	}
	return nil
}
