package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// runIdempotentAppend checks EventStore.Append's idempotency keys
// (RunEventStore calls it): a second append with a held key stores nothing
// and answers the first event, whatever its draft, also after the terminal
// event; keys are per task; the empty key never deduplicates; of 20
// concurrent appends with one key exactly one stores and all answer its
// event.
func runIdempotentAppend(t *testing.T, newStore func(t *testing.T) contracts.EventStore) {
	t.Helper()

	t.Run("IdempotentAppendRetry", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		first, err := store.Append(ctx, "task-1", mustDraft(t)(contracts.Progress(10, "a", "first")).WithIdempotencyKey("k1"))
		require.NoError(t, err)
		other, err := store.Append(ctx, "task-1", mustDraft(t)(contracts.Progress(20, "b", "second")).WithIdempotencyKey("k2"))
		require.NoError(t, err)

		// The retry of the first append, as after a timeout whose attempt
		// was in fact applied: same key, and here even another payload.
		again, err := store.Append(ctx, "task-1", mustDraft(t)(contracts.Progress(99, "z", "retry")).WithIdempotencyKey("k1"))
		require.NoError(t, err, "a retry with a held key is no error")
		requireSameEvents(t, []contracts.TaskEvent{first}, []contracts.TaskEvent{again})

		page, err := store.Read(ctx, "task-1", contracts.EventID{}, 100)
		require.NoError(t, err)
		requireSameEvents(t, []contracts.TaskEvent{first, other}, page.Events)

		// A new key after the retry appends after the others.
		third, err := store.Append(ctx, "task-1", mustDraft(t)(contracts.Progress(30, "c", "third")).WithIdempotencyKey("k3"))
		require.NoError(t, err)
		assert.True(t, other.EventID.Less(third.EventID))
	})

	t.Run("IdempotentAppendKeysPerTask", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		a, err := store.Append(ctx, "task-a", contracts.Started("a").WithIdempotencyKey("same"))
		require.NoError(t, err)
		b, err := store.Append(ctx, "task-b", contracts.Started("b").WithIdempotencyKey("same"))
		require.NoError(t, err)
		assert.Equal(t, "task-a", a.TaskID)
		assert.Equal(t, "task-b", b.TaskID, "one key on two tasks stores two events")
		assert.Len(t, readAll(t, store, "task-a", contracts.EventID{}, 10), 1)
		assert.Len(t, readAll(t, store, "task-b", contracts.EventID{}, 10), 1)
	})

	t.Run("IdempotentAppendEmptyKey", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		d := contracts.Started("x").WithIdempotencyKey("")
		for range 2 {
			_, err := store.Append(ctx, "task-1", d)
			require.NoError(t, err)
		}
		assert.Len(t, readAll(t, store, "task-1", contracts.EventID{}, 10), 2, "the empty key never deduplicates")
	})

	t.Run("IdempotentTerminalRetry", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		_, err := store.Append(ctx, "task-1", contracts.Started("").WithIdempotencyKey("s"))
		require.NoError(t, err)
		failed := mustDraft(t)(contracts.Failed("BOOM", "it broke", false))
		term, err := store.Append(ctx, "task-1", failed.WithIdempotencyKey("end"))
		require.NoError(t, err)

		// The retry of the terminal append answers the terminal event
		// rather than ErrTerminal: the caller learns its append landed.
		again, err := store.Append(ctx, "task-1", failed.WithIdempotencyKey("end"))
		require.NoError(t, err)
		requireSameEvents(t, []contracts.TaskEvent{term}, []contracts.TaskEvent{again})
		// A retry of an earlier append still answers its event.
		started, err := store.Append(ctx, "task-1", contracts.Started("").WithIdempotencyKey("s"))
		require.NoError(t, err)
		assert.Equal(t, contracts.EventStarted, started.Type)

		// Any other append after the terminal event is refused.
		_, err = store.Append(ctx, "task-1", failed.WithIdempotencyKey("other"))
		require.ErrorIs(t, err, contracts.ErrTerminal)
		_, err = store.Append(ctx, "task-1", failed)
		require.ErrorIs(t, err, contracts.ErrTerminal)

		page, err := store.Read(ctx, "task-1", contracts.EventID{}, 100)
		require.NoError(t, err)
		require.Len(t, page.Events, 2)
		assert.True(t, page.Ended)
	})

	t.Run("IdempotentAppendRace", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		const n = 20
		results := make([]contracts.TaskEvent, n)
		errs := make([]error, n)
		together(n, func(i int) {
			d, err := contracts.Progress(float64(i), "", fmt.Sprint(i))
			if err != nil {
				errs[i] = err
				return
			}
			results[i], errs[i] = store.Append(ctx, "task-1", d.WithIdempotencyKey("one"))
		})
		for i := range n {
			require.NoError(t, errs[i], "append %d", i)
			assert.Equal(t, results[0].EventID, results[i].EventID, "every append answers the one stored event")
			assert.JSONEq(t, string(results[0].Payload), string(results[i].Payload))
		}
		assert.Len(t, readAll(t, store, "task-1", contracts.EventID{}, 100), 1, "exactly one append stored")
	})

	t.Run("IdempotentAppendNotifiesOnce", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		rec := startListener(t, ctx, store)
		first, err := store.Append(ctx, "task-1", contracts.Started("").WithIdempotencyKey("k"))
		require.NoError(t, err)
		_, err = store.Append(ctx, "task-1", contracts.Started("").WithIdempotencyKey("k"))
		require.NoError(t, err)
		// A later append is noticed after any notice of the retry would
		// have been, since notices of one task come in append order.
		last, err := store.Append(ctx, "task-1", contracts.Started("").WithIdempotencyKey("k2"))
		require.NoError(t, err)
		require.True(t, rec.waitUntil(ctx, func() bool {
			ids := rec.idsFor("task-1")
			return len(ids) > 0 && ids[len(ids)-1] == last.EventID
		}), "the last append was not noticed")
		assert.Equal(t, []contracts.EventID{first.EventID, last.EventID}, rec.idsFor("task-1"),
			"a retry with a held key notifies nobody")
	})
}

// RunIdempotencyRetention checks how long a capped store holds idempotency
// keys: as long as their event is retained. A key whose event the cap
// dropped is forgotten (an append with it stores a new event), a key of a
// retained event still answers it. newStore is RunBatchReaderRetention's
// factory: a fresh, empty store that retains about maxEvents events per
// task and drops some event once it holds 4*maxEvents+16.
func RunIdempotencyRetention(t *testing.T, newStore func(t *testing.T, maxEvents int) contracts.EventStore) {
	t.Helper()
	t.Run("IdempotencyKeyLivesWithItsEvent", func(t *testing.T) {
		t.Parallel()
		const maxEvents = 5
		ctx := testContext(t)
		store := newStore(t, maxEvents)
		key := func(i int) string { return fmt.Sprintf("key-%d", i) }
		var evs []contracts.TaskEvent
		for len(evs) < 4*maxEvents+16 {
			ev, err := store.Append(ctx, "task-a",
				mustDraft(t)(contracts.Progress(float64(len(evs)%101), "", fmt.Sprint(len(evs)))).WithIdempotencyKey(key(len(evs))))
			require.NoError(t, err)
			evs = append(evs, ev)
			page, err := store.Read(ctx, "task-a", contracts.EventID{}, 1)
			require.NoError(t, err)
			if page.RetentionGap && len(evs) > 2*maxEvents {
				break
			}
		}
		oldest, err := store.Read(ctx, "task-a", contracts.EventID{}, 1)
		require.NoError(t, err)
		require.True(t, oldest.RetentionGap, "the store dropped no event of %d", len(evs))
		first := oldest.Events[0].EventID

		// The newest event is retained: its key still answers it.
		newest := len(evs) - 1
		again, err := store.Append(ctx, "task-a", contracts.Started("retry").WithIdempotencyKey(key(newest)))
		require.NoError(t, err)
		assert.Equal(t, evs[newest].EventID, again.EventID, "the key of a retained event is held")

		// The first event was dropped: its key is forgotten with it.
		require.True(t, evs[0].EventID.Less(first))
		fresh, err := store.Append(ctx, "task-a", contracts.Started("anew").WithIdempotencyKey(key(0)))
		require.NoError(t, err)
		assert.True(t, evs[newest].EventID.Less(fresh.EventID), "a forgotten key appends a new event")
	})
}
