package redisstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
	"github.com/taskbridge/taskbridge-fiber/stores/storetest"
)

// TestReadBatchRetention runs the conformance suite's ReadBatch checks
// against a capped store (TestConformance covers the uncapped ones).
func TestReadBatchRetention(t *testing.T) {
	redisAddr(t)
	storetest.RunBatchReaderRetention(t, func(t *testing.T, maxEvents int) contracts.EventStore {
		s, _, _ := newStores(t, redisstore.Options{MaxEventsPerTask: int64(maxEvents)})
		return s.Events
	})
}

// TestIdempotencyRetention checks that trimming forgets an idempotency key
// together with its event.
func TestIdempotencyRetention(t *testing.T) {
	redisAddr(t)
	storetest.RunIdempotencyRetention(t, func(t *testing.T, maxEvents int) contracts.EventStore {
		s, _, _ := newStores(t, redisstore.Options{MaxEventsPerTask: int64(maxEvents)})
		return s.Events
	})
}

// batchFixture is a store with two tasks of three events each.
type batchFixture struct {
	events *redisstore.EventStore
	client *redisClient
	prefix string
	a, b   []contracts.EventID
}

func newBatchFixture(t *testing.T) *batchFixture {
	t.Helper()
	s, c, prefix := newStores(t, redisstore.Options{})
	f := &batchFixture{events: s.Events.(*redisstore.EventStore), client: c, prefix: prefix}
	ctx := testContext(t)
	for i := range 3 {
		ev, err := s.Events.Append(ctx, "task-a", must(t)(contracts.Progress(float64(i), "", "")))
		require.NoError(t, err)
		f.a = append(f.a, ev.EventID)
		ev, err = s.Events.Append(ctx, "task-b", must(t)(contracts.Progress(float64(i), "", "")))
		require.NoError(t, err)
		f.b = append(f.b, ev.EventID)
	}
	return f
}

func (f *batchFixture) read(t *testing.T, reqs []contracts.ReadRequest) ([]contracts.EventPage, []error) {
	t.Helper()
	pages := make([]contracts.EventPage, len(reqs))
	errs := make([]error, len(reqs))
	f.events.ReadBatch(testContext(t), reqs, pages, errs)
	return pages, errs
}

// TestReadBatchReloadsFlushedScript: after SCRIPT FLUSH (a restarted
// server, a new cluster node) the batch's EVALSHAs are refused with
// NOSCRIPT; the batch sends them again with EVAL and every request still
// gets its page.
func TestReadBatchReloadsFlushedScript(t *testing.T) {
	f := newBatchFixture(t)
	require.NoError(t, f.client.ScriptFlush(testContext(t)).Err())
	reqs := []contracts.ReadRequest{
		{TaskID: "task-a", Limit: 10},
		{TaskID: "task-b", After: f.b[0], Limit: 10},
		{TaskID: "missing", Limit: 10},
	}
	pages, errs := f.read(t, reqs)
	for i := range reqs {
		require.NoError(t, errs[i], "request %d", i)
	}
	assert.Len(t, pages[0].Events, 3)
	assert.Len(t, pages[1].Events, 2)
	assert.Empty(t, pages[2].Events)

	// The EVAL cached the script: the next batch's EVALSHAs succeed.
	pages, errs = f.read(t, reqs[:1])
	require.NoError(t, errs[0])
	assert.Len(t, pages[0].Events, 3)
}

// TestReadBatchPerRequestErrors: a request whose keys Redis refuses fails
// alone, with no page; the others of the batch are served.
func TestReadBatchPerRequestErrors(t *testing.T) {
	f := newBatchFixture(t)
	ctx := testContext(t)
	require.NoError(t, f.client.Set(ctx, f.prefix+"{task-bad}:events", "not a stream", 0).Err())
	reqs := []contracts.ReadRequest{
		{TaskID: "task-a", After: f.a[1], Limit: 10},
		{TaskID: "task-bad", Limit: 10},
		{TaskID: "task-b", Limit: 2},
	}
	pages, errs := f.read(t, reqs)
	require.NoError(t, errs[0])
	assert.Equal(t, f.a[2:], ids(pages[0].Events))
	require.Error(t, errs[1])
	assert.Contains(t, errs[1].Error(), "WRONGTYPE")
	assert.Contains(t, errs[1].Error(), `"task-bad"`)
	assert.Zero(t, pages[1], "a failed request has no page")
	require.NoError(t, errs[2])
	assert.Equal(t, f.b[:2], ids(pages[2].Events))

	_, err := f.events.Read(ctx, "task-bad", contracts.EventID{}, 10)
	require.Error(t, err, "Read fails the same request")
}

// TestReadBatchTransportFailure: when the round trip fails (here, a
// cancelled context; a closed client likewise) every request reports it.
func TestReadBatchTransportFailure(t *testing.T) {
	f := newBatchFixture(t)
	reqs := []contracts.ReadRequest{{TaskID: "task-a", Limit: 10}, {TaskID: "task-b", Limit: 10}, {TaskID: "", Limit: 10}}
	pages := make([]contracts.EventPage, len(reqs))
	errs := make([]error, len(reqs))
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	f.events.ReadBatch(ctx, reqs, pages, errs)
	for i := range 2 {
		require.ErrorIs(t, errs[i], context.Canceled, "request %d", i)
		assert.Zero(t, pages[i])
	}
	require.NoError(t, errs[2], "an empty task id reads as an empty page without Redis, as in Read")
	assert.Zero(t, pages[2])
}

// TestReadBatchShortSlices: pages or errs shorter than reqs is a caller
// bug and panics before anything is sent.
func TestReadBatchShortSlices(t *testing.T) {
	f := newBatchFixture(t)
	reqs := []contracts.ReadRequest{{TaskID: "task-a", Limit: 10}, {TaskID: "task-b", Limit: 10}}
	assert.Panics(t, func() {
		f.events.ReadBatch(context.Background(), reqs, make([]contracts.EventPage, 1), make([]error, 2))
	})
	assert.Panics(t, func() {
		f.events.ReadBatch(context.Background(), reqs, make([]contracts.EventPage, 2), make([]error, 1))
	})
}

func ids(evs []contracts.TaskEvent) []contracts.EventID {
	out := make([]contracts.EventID, len(evs))
	for i := range evs {
		out[i] = evs[i].EventID
	}
	return out
}
