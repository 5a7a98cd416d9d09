package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// stepClock is a clock the test moves by hand.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time          { return c.now }
func (c *stepClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// lister returns the registry's owner index.
func lister(t *testing.T, s contracts.Stores) contracts.TaskLister {
	t.Helper()
	l, ok := s.Tasks.(contracts.TaskLister)
	require.True(t, ok)
	return l
}

// summaries returns the event store's summary reader.
func summaries(t *testing.T, s contracts.Stores) contracts.SummaryReader {
	t.Helper()
	r, ok := s.Events.(contracts.SummaryReader)
	require.True(t, ok)
	return r
}

// The owner index follows the records: a member whose task is gone (here
// deleted, as its TTL would) is neither listed nor kept, Create prunes the
// oldest members, and the index carries an expiry.
func TestOwnerIndexFollowsRecords(t *testing.T) {
	ctx := testContext(t)
	clock := &stepClock{now: time.Now().Add(-2 * time.Hour)}
	s, c, prefix := newStores(t, redisstore.Options{Clock: clock.Now})
	create := func(id string) {
		t.Helper()
		_, _, err := s.Tasks.Create(ctx, contracts.TaskRecord{TaskID: id, OwnerID: "alice", ClientRequestID: id,
			TaskType: "demo", Input: []byte(`{}`)})
		require.NoError(t, err)
		clock.Advance(time.Millisecond)
	}
	list := func() []string {
		t.Helper()
		page, err := lister(t, s).ListTasks(ctx, contracts.TaskListQuery{OwnerID: "alice", Limit: 10})
		require.NoError(t, err)
		var ids []string
		for _, h := range page.Tasks {
			ids = append(ids, h.TaskID)
		}
		return ids
	}
	index := prefix + "owner:{alice}:tasks"
	members := func() int64 {
		t.Helper()
		n, err := c.ZCard(ctx, index).Result()
		require.NoError(t, err)
		return n
	}

	for _, id := range []string{"a", "b", "c", "d"} {
		create(id)
	}
	assert.Equal(t, []string{"d", "c", "b", "a"}, list())
	ttl, err := c.PTTL(ctx, index).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, redisstore.DefaultActiveTTL, "the index outlives its tasks: ActiveTTL + TerminalTTL")

	require.NoError(t, c.Del(ctx, prefix+"{c}:task").Err())
	assert.Equal(t, []string{"d", "b", "a"}, list(), "a task whose record is gone is not listed")
	assert.EqualValues(t, 3, members(), "and the listing removed its member")

	// The clock moves past the shortest TTL: one of every sixteen creates
	// checks the oldest members and removes those whose record is gone.
	require.NoError(t, c.Del(ctx, prefix+"{a}:task", prefix+"{b}:task").Err())
	clock.Advance(2 * time.Hour)
	var want []string
	for i := range 16 {
		id := fmt.Sprintf("n%02d", i)
		create(id)
		want = append([]string{id}, want...)
	}
	assert.EqualValues(t, 17, members(), "a create pruned a and b, whose records are gone, and kept d")
	page, err := lister(t, s).ListTasks(ctx, contracts.TaskListQuery{OwnerID: "alice", Limit: 20})
	require.NoError(t, err)
	var got []string
	for _, h := range page.Tasks {
		got = append(got, h.TaskID)
	}
	assert.Equal(t, append(want, "d"), got)
}

// Task ids with NUL bytes and braces keep their listing order and come
// back intact.
func TestOwnerIndexOddIDs(t *testing.T) {
	ctx := testContext(t)
	s, _, _ := newStores(t, redisstore.Options{})
	at := time.Now().Truncate(time.Millisecond)
	ids := []string{"a", "a\x00", "a\x00\x00b", "a\x01", "{b}", "%c"}
	for _, id := range ids {
		_, _, err := s.Tasks.Create(ctx, contracts.TaskRecord{TaskID: id, OwnerID: "{owner}", ClientRequestID: id,
			TaskType: "t\x00ype", Input: []byte(`{}`), CreatedAt: at})
		require.NoError(t, err)
	}
	var got []string
	q := contracts.TaskListQuery{OwnerID: "{owner}", Limit: 2}
	for {
		page, err := lister(t, s).ListTasks(ctx, q)
		require.NoError(t, err)
		for _, h := range page.Tasks {
			got = append(got, h.TaskID)
			assert.Equal(t, "t\x00ype", h.TaskType)
		}
		if page.Next.IsZero() {
			break
		}
		q.After = page.Next
	}
	assert.Equal(t, []string{"{b}", "a\x01", "a\x00\x00b", "a\x00", "a", "%c"}, got, "task id order, bytewise, newest first")
}

// The summary lives in the meta hash and is exact after the stream was
// trimmed past the event it came from.
func TestSummarySurvivesTrimming(t *testing.T) {
	ctx := testContext(t)
	s, _, _ := newStores(t, redisstore.Options{MaxEventsPerTask: 2})
	p, err := contracts.Progress(30, "", "")
	require.NoError(t, err)
	_, err = s.Events.Append(ctx, "t", p)
	require.NoError(t, err)
	var last contracts.TaskEvent
	for range 6 {
		m, err := contracts.Message("chatter", "")
		require.NoError(t, err)
		last, err = s.Events.Append(ctx, "t", m)
		require.NoError(t, err)
	}
	page, err := s.Events.Read(ctx, "t", contracts.EventID{}, 10)
	require.NoError(t, err)
	require.True(t, page.RetentionGap, "the progress event was trimmed")
	sums, err := summaries(t, s).Summaries(ctx, []string{"t"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"progress":30}`, string(sums[0].Progress))
	assert.Equal(t, last.EventID, sums[0].LastEventID)
}

// A create whose owner index cannot be written creates nothing: the record
// is discarded and the idempotency key released, so a retry creates the
// task once the index works again.
func TestCreateFailsWithoutItsIndex(t *testing.T) {
	ctx := testContext(t)
	s, c, prefix := newStores(t, redisstore.Options{})
	index := prefix + "owner:{bob}:tasks"
	require.NoError(t, c.Set(ctx, index, "not a sorted set", 0).Err()) // ZADD answers WRONGTYPE
	task := contracts.TaskRecord{TaskID: "t1", OwnerID: "bob", ClientRequestID: "r1", TaskType: "demo", Input: []byte(`{}`)}
	_, _, err := s.Tasks.Create(ctx, task)
	require.Error(t, err)
	_, err = s.Tasks.Get(ctx, "t1")
	require.ErrorIs(t, err, contracts.ErrNotFound, "the record is discarded")
	n, err := c.Exists(ctx, prefix+"idem:3:bob:r1").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the idempotency key is released")

	require.NoError(t, c.Del(ctx, index).Err())
	_, created, err := s.Tasks.Create(ctx, task)
	require.NoError(t, err)
	assert.True(t, created)
	page, err := lister(t, s).ListTasks(ctx, contracts.TaskListQuery{OwnerID: "bob", Limit: 5})
	require.NoError(t, err)
	require.Len(t, page.Tasks, 1)
	assert.Equal(t, "t1", page.Tasks[0].TaskID)
}

// TestCreateFailsWhenItsKeyCannotBeClaimed: an idempotency key Redis
// cannot read (GET answers WRONGTYPE) fails the create and leaves neither
// the record nor its owner index entry, as a failed index entry does (on a
// single Redis the record, the claim and the entry are one script, whose
// parts fail one by one).
func TestCreateFailsWhenItsKeyCannotBeClaimed(t *testing.T) {
	ctx := testContext(t)
	s, c, prefix := newStores(t, redisstore.Options{})
	idem := prefix + "idem:3:eve:r1"
	require.NoError(t, c.HSet(ctx, idem, "f", "v").Err())
	task := contracts.TaskRecord{TaskID: "t1", OwnerID: "eve", ClientRequestID: "r1", TaskType: "demo", Input: []byte(`{}`)}
	_, _, err := s.Tasks.Create(ctx, task)
	require.ErrorContains(t, err, "WRONGTYPE")
	_, err = s.Tasks.Get(ctx, "t1")
	require.ErrorIs(t, err, contracts.ErrNotFound, "the record is discarded")
	n, err := c.ZCard(ctx, prefix+"owner:{eve}:tasks").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the owner index entry is removed")

	require.NoError(t, c.Del(ctx, idem).Err())
	_, created, err := s.Tasks.Create(ctx, task)
	require.NoError(t, err)
	assert.True(t, created)
}
