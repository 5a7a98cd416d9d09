package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

func must(tb testing.TB) func(contracts.EventDraft, error) contracts.EventDraft {
	return func(d contracts.EventDraft, err error) contracts.EventDraft {
		tb.Helper()
		require.NoError(tb, err)
		return d
	}
}

// TestPayloadRoundTrip appends one event of each of the eight types and
// reads back the very bytes of every payload, the type, the task id, the
// id Redis assigned and the millisecond CreatedAt; the stream entry holds
// the documented fields.
func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clock := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
	s, c, prefix := newStores(t, redisstore.Options{Clock: func() time.Time { return clock }})
	d := must(t)
	exp := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	drafts := []struct {
		name  string
		draft contracts.EventDraft
	}{
		{"started", contracts.Started("héllo / \"world\" \u2028")},
		{"progress", d(contracts.Progress(42.5, "stage", "half"))},
		{"message", d(contracts.Message("<b>&</b>", contracts.LevelWarning))},
		{"suspended", d(contracts.Suspended(contracts.SuspendedPayload{
			SuspendID: "s1", Kind: contracts.KindUserActionRequired, ReasonCode: "APPROVE",
			AllowedActions: []string{"approve", "reject"}, SchemaVersion: 1, ExpiresAt: &exp,
			Interaction: map[string]any{"n": 1e21, "nested": map[string]any{"a": []any{1, "x"}}},
		}))},
		{"action accepted", d(contracts.ActionAccepted(contracts.ActionAcceptedPayload{
			SuspendID: "s1", ClientActionID: "a1", ActionType: "approve", AcceptedAt: clock,
		}))},
		{"message no level", d(contracts.Message("plain", ""))},
		// ParseDraft keeps the extra keys of a completed payload and exact
		// number spellings, which a Lua cjson round trip would not.
		{"completed", d(contracts.ParseDraft(contracts.EventCompleted,
			[]byte(`{"result":{"big":12345678901234567890,"f":1.10,"s":"a/b"},"extra":[true,null]}`)))},
	}
	var appended []contracts.TaskEvent
	for _, tc := range drafts {
		ev, err := s.Events.Append(ctx, "task-rt", tc.draft)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.draft.Type(), ev.Type, tc.name)
		assert.Equal(t, string(tc.draft.Payload()), string(ev.Payload), tc.name)
		assert.True(t, ev.CreatedAt.Equal(clock.Truncate(time.Millisecond)), "%s: createdAt %s", tc.name, ev.CreatedAt)
		appended = append(appended, ev)
	}
	for _, terminal := range []struct {
		name  string
		draft contracts.EventDraft
	}{
		{"failed", d(contracts.Failed("E_X", "boom", true))},
		{"cancelled", d(contracts.Cancelled("user", "bye"))},
	} {
		// The other two terminal types, each ending its own task.
		ev, err := s.Events.Append(ctx, "task-rt-"+terminal.name, terminal.draft)
		require.NoError(t, err)
		page, err := s.Events.Read(ctx, "task-rt-"+terminal.name, contracts.EventID{}, 10)
		require.NoError(t, err)
		require.Len(t, page.Events, 1)
		assert.Equal(t, ev, page.Events[0])
		assert.Equal(t, string(terminal.draft.Payload()), string(page.Events[0].Payload))
		assert.True(t, page.Ended)
	}

	page, err := s.Events.Read(ctx, "task-rt", contracts.EventID{}, 100)
	require.NoError(t, err)
	require.Equal(t, appended, page.Events)
	assert.True(t, page.Ended, "the completed event ends the stream")
	assert.False(t, page.RetentionGap)
	for i := 1; i < len(page.Events); i++ {
		assert.True(t, page.Events[i-1].EventID.Less(page.Events[i].EventID))
	}
	// The wire JSON of a read event decodes strictly, as every transport
	// will send it.
	for _, ev := range page.Events {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		var back contracts.TaskEvent
		err = json.Unmarshal(raw, &back)
		require.NoError(t, err, string(raw))
		assert.Equal(t, string(ev.Payload), string(back.Payload))
	}

	// The documented stream layout: type, createdAt (unix ms), payload.
	entries, err := c.XRange(ctx, prefix+"{task-rt}:events", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, entries, len(appended))
	for i, e := range entries {
		assert.Equal(t, appended[i].EventID.String(), e.ID)
		assert.Equal(t, map[string]any{
			"type":      string(appended[i].Type),
			"createdAt": strconv.FormatInt(clock.UnixMilli(), 10),
			"payload":   string(appended[i].Payload),
		}, e.Values)
	}
	terminalID, err := c.HGet(ctx, prefix+"{task-rt}:meta", "terminal").Result()
	require.NoError(t, err)
	assert.Equal(t, appended[len(appended)-1].EventID.String(), terminalID)
}

// TestAppendRejects covers the zero draft, the empty task id and appends
// after the terminal event, which leave the stream untouched.
func TestAppendRejects(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, prefix := newStores(t, redisstore.Options{})

	_, err := s.Events.Append(ctx, "t", contracts.EventDraft{})
	require.ErrorIs(t, err, contracts.ErrInvalidPayload)
	_, err = s.Events.Append(ctx, "", contracts.Started(""))
	require.Error(t, err)

	done, err := s.Events.Append(ctx, "t", must(t)(contracts.Completed(nil)))
	require.NoError(t, err)
	for _, d := range []contracts.EventDraft{contracts.Started("late"), must(t)(contracts.Failed("E", "late", false))} {
		_, err = s.Events.Append(ctx, "t", d)
		require.ErrorIs(t, err, contracts.ErrTerminal)
	}
	n, err := c.XLen(ctx, prefix+"{t}:events").Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)

	page, err := s.Events.Read(ctx, "t", done.EventID, 10)
	require.NoError(t, err)
	assert.Empty(t, page.Events)
	assert.True(t, page.Ended, "a cursor at the terminal event has ended")

	page, err = s.Events.Read(ctx, "", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Equal(t, contracts.EventPage{}, page)
}

// TestRetentionGap fills a capped stream far past its cap and checks the
// trimming bounds and the gap against the exact highest trimmed id.
func TestRetentionGap(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const cap = 8 // slack: max(8/16, 1) = 1
	s, c, prefix := newStores(t, redisstore.Options{MaxEventsPerTask: cap})
	var ids []contracts.EventID
	for i := range 30 {
		ev, err := s.Events.Append(ctx, "t", contracts.Started(fmt.Sprint(i)))
		require.NoError(t, err)
		ids = append(ids, ev.EventID)
		n, err := c.XLen(ctx, prefix+"{t}:events").Result()
		require.NoError(t, err)
		require.LessOrEqual(t, n, int64(cap+1), "the stream stays within cap+slack")
	}
	page, err := s.Events.Read(ctx, "t", contracts.EventID{}, 100)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(page.Events), cap)
	assert.True(t, page.RetentionGap, "a zero cursor after trimming has a gap")
	k := len(ids) - len(page.Events) // first retained index
	require.Equal(t, ids[k:], eventIDsOf(page.Events))
	trimmed, err := c.HGet(ctx, prefix+"{t}:meta", "trimmed").Result()
	require.NoError(t, err)
	require.Equal(t, ids[k-1].String(), trimmed)

	cases := []struct {
		name   string
		cursor contracts.EventID
		gap    bool
		first  contracts.EventID
	}{
		{"before the trimmed ones", contracts.MustParseEventID("1-0"), true, ids[k]},
		{"one before the highest trimmed", ids[k-2], true, ids[k]},
		{"at the highest trimmed", ids[k-1], false, ids[k]},
		{"at the first retained", ids[k], false, ids[k+1]},
		{"at the last", ids[len(ids)-1], false, contracts.EventID{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Events.Read(ctx, "t", tc.cursor, 100)
			require.NoError(t, err)
			assert.Equal(t, tc.gap, page.RetentionGap)
			if tc.first.IsZero() {
				assert.Empty(t, page.Events)
			} else {
				require.NotEmpty(t, page.Events)
				assert.Equal(t, tc.first, page.Events[0].EventID)
			}
		})
	}

	t.Run("unbounded", func(t *testing.T) {
		u := check(redisstore.New(c, redisstore.Options{KeyPrefix: prefix + "u:", MaxEventsPerTask: -1}))(t).Events
		for i := range 40 {
			_, err := u.Append(ctx, "t", contracts.Started(fmt.Sprint(i)))
			require.NoError(t, err)
		}
		page, err := u.Read(ctx, "t", contracts.EventID{}, 100)
		require.NoError(t, err)
		assert.Len(t, page.Events, 40)
		assert.False(t, page.RetentionGap)
	})
}

func eventIDsOf(evs []contracts.TaskEvent) []contracts.EventID {
	out := make([]contracts.EventID, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID
	}
	return out
}

// pttl returns a key's remaining time to live (-1: none, -2: no key).
func pttl(tb testing.TB, c redis.UniversalClient, key string) time.Duration {
	tb.Helper()
	d, err := c.PTTL(context.Background(), key).Result()
	require.NoError(tb, err)
	return d
}

// TestTaskKeyExpiry checks the expiry convention of a task's keys: the
// active TTL refreshed by writes, then the terminal TTL from whichever of
// the terminal event and the terminal status comes first (the first
// deadline wins), including the idempotency key; never with negative TTLs.
func TestTaskKeyExpiry(t *testing.T) {
	t.Parallel()
	const active, terminal = time.Hour, 10 * time.Minute
	within := func(tb testing.TB, key string, d time.Duration, c redis.UniversalClient) {
		tb.Helper()
		got := pttl(tb, c, key)
		assert.LessOrEqual(tb, got, d, key)
		assert.Greater(tb, got, d-time.Minute, key)
	}
	newTask := func(id string) contracts.TaskRecord {
		return contracts.TaskRecord{TaskID: id, OwnerID: "o", ClientRequestID: "r-" + id, TaskType: "demo",
			Input: json.RawMessage(`{}`), Fingerprint: "f"}
	}

	t.Run("event first", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		s, c, p := newStores(t, redisstore.Options{ActiveTTL: active, TerminalTTL: terminal})
		_, _, err := s.Tasks.Create(ctx, newTask("a"))
		require.NoError(t, err)
		within(t, p+"{a}:task", active, c)
		within(t, p+"idem:1:o:r-a", active, c)
		_, err = s.Events.Append(ctx, "a", contracts.Started(""))
		require.NoError(t, err)
		within(t, p+"{a}:events", active, c)
		within(t, p+"{a}:meta", active, c) // the task's summary, written by every append

		// Shorten the stream's TTL by hand: the terminal TTL must not
		// extend a deadline that is already earlier.
		require.NoError(t, c.PExpire(ctx, p+"{a}:events", 5*time.Minute).Err())
		_, err = s.Events.Append(ctx, "a", must(t)(contracts.Completed("ok")))
		require.NoError(t, err)
		within(t, p+"{a}:task", terminal, c)
		within(t, p+"{a}:meta", terminal, c)
		within(t, p+"{a}:events", 5*time.Minute, c)

		_, err = s.Tasks.UpdateStatus(ctx, "a", contracts.StatusRunning)
		require.NoError(t, err)
		within(t, p+"{a}:task", terminal, c) // ended by its event: no active refresh
		require.NoError(t, c.PExpire(ctx, p+"{a}:task", 3*time.Minute).Err())
		_, err = s.Tasks.UpdateStatus(ctx, "a", contracts.StatusCompleted)
		require.NoError(t, err)
		within(t, p+"{a}:task", 3*time.Minute, c)
		within(t, p+"idem:1:o:r-a", terminal, c)
	})

	t.Run("status first", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		s, c, p := newStores(t, redisstore.Options{ActiveTTL: active, TerminalTTL: terminal})
		_, _, err := s.Tasks.Create(ctx, newTask("b"))
		require.NoError(t, err)
		_, err = s.Events.Append(ctx, "b", contracts.Started(""))
		require.NoError(t, err)
		_, err = s.Tasks.UpdateStatus(ctx, "b", contracts.StatusFailed)
		require.NoError(t, err)
		within(t, p+"{b}:task", terminal, c)
		within(t, p+"{b}:events", terminal, c)
		within(t, p+"{b}:meta", terminal, c)
		within(t, p+"idem:1:o:r-b", terminal, c)
		// A later append (allowed: the stream has no terminal event yet)
		// keeps the terminal deadline instead of refreshing the active one.
		_, err = s.Events.Append(ctx, "b", contracts.Started("late"))
		require.NoError(t, err)
		within(t, p+"{b}:events", terminal, c)
	})

	t.Run("never", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		s, c, p := newStores(t, redisstore.Options{ActiveTTL: -1, TerminalTTL: -1})
		_, _, err := s.Tasks.Create(ctx, newTask("c"))
		require.NoError(t, err)
		_, err = s.Events.Append(ctx, "c", must(t)(contracts.Completed(1)))
		require.NoError(t, err)
		_, err = s.Tasks.UpdateStatus(ctx, "c", contracts.StatusCancelled)
		require.NoError(t, err)
		for _, k := range []string{p + "{c}:task", p + "{c}:events", p + "{c}:meta", p + "idem:1:o:r-c"} {
			assert.Equal(t, time.Duration(-1), pttl(t, c, k), k)
		}
	})
}

// TestTerminalTaskExpires lets Redis expire an ended task for real: its
// record, stream and idempotency key disappear, and a repeated create with
// the same key then makes a new task.
func TestTerminalTaskExpires(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, p := newStores(t, redisstore.Options{TerminalTTL: 150 * time.Millisecond})
	task := contracts.TaskRecord{TaskID: "x", OwnerID: "o", ClientRequestID: "r", TaskType: "demo", Input: json.RawMessage(`{}`)}
	_, created, err := s.Tasks.Create(ctx, task)
	require.NoError(t, err)
	require.True(t, created)
	_, err = s.Events.Append(ctx, "x", must(t)(contracts.Completed(nil)))
	require.NoError(t, err)
	_, err = s.Tasks.UpdateStatus(ctx, "x", contracts.StatusFailed)
	require.NoError(t, err)

	// The owner's index outlives its tasks (see ownerindex.go); the
	// listing finds the task gone.
	taskKeys := func() []string {
		var left []string
		for _, k := range keysUnder(t, c, p) {
			if k != p+"owner:{o}:tasks" {
				left = append(left, k)
			}
		}
		return left
	}
	require.Eventually(t, func() bool { return len(taskKeys()) == 0 }, 5*time.Second, 20*time.Millisecond)
	list, err := s.Tasks.(contracts.TaskLister).ListTasks(ctx, contracts.TaskListQuery{OwnerID: "o", Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, list.Tasks)
	_, err = s.Tasks.Get(ctx, "x")
	require.ErrorIs(t, err, contracts.ErrNotFound)
	page, err := s.Events.Read(ctx, "x", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Equal(t, contracts.EventPage{}, page)

	task.TaskID = "y"
	got, created, err := s.Tasks.Create(ctx, task)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "y", got.TaskID)
}

// TestRedisErrorsAreWrapped uses a closed client: every call returns an
// error wrapping the client's, and nothing panics.
func TestRedisErrorsAreWrapped(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t)
	s := check(redisstore.New(c, redisstore.Options{KeyPrefix: uniquePrefix(t, newClient(t))}))(t)
	require.NoError(t, c.Close())

	_, err := s.Events.Append(ctx, "t", contracts.Started(""))
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, err = s.Events.Read(ctx, "t", contracts.EventID{}, 1)
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, _, err = s.Tasks.Create(ctx, contracts.TaskRecord{TaskID: "t", ClientRequestID: "r"})
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, err = s.Tasks.Get(ctx, "t")
	assert.ErrorIs(t, err, redis.ErrClosed)
	assert.False(t, errors.Is(err, contracts.ErrNotFound))
	_, err = s.Tasks.UpdateStatus(ctx, "t", contracts.StatusRunning)
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, err = s.Tasks.RequestCancellation(ctx, "t", "r")
	assert.ErrorIs(t, err, redis.ErrClosed)
	assert.ErrorIs(t, s.Suspensions.Create(ctx, contracts.SuspensionRecord{TaskID: "t", SuspendID: "s"}), redis.ErrClosed)
	_, _, err = s.Suspensions.Resolve(ctx, "t", "s", contracts.Resolution{Status: contracts.SuspensionResolved})
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, err = s.Suspensions.(contracts.SuspensionMaintenance).PendingHandoffs(ctx, 0)
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, err = s.Suspensions.(contracts.SuspensionMaintenance).ExpireOpen(ctx, time.Now())
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, _, err = s.Receipts.Save(ctx, contracts.ActionReceipt{TaskID: "t", ClientActionID: "a"})
	assert.ErrorIs(t, err, redis.ErrClosed)
	_, err = s.Receipts.DeleteExpired(ctx, time.Now())
	assert.ErrorIs(t, err, redis.ErrClosed)
	assert.Error(t, redisstore.NewProbe(c, time.Second).Check(ctx))
}

// TestCallsEndWithTheirContext: a cancelled context fails the call instead
// of running it.
func TestCallsEndWithTheirContext(t *testing.T) {
	t.Parallel()
	s, _, _ := newStores(t, redisstore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Events.Append(ctx, "t", contracts.Started(""))
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Tasks.Get(ctx, "t")
	require.ErrorIs(t, err, context.Canceled)
}
