package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// runSummaryReader checks contracts.SummaryReader on stores that implement
// it (skipped otherwise): the summary follows every append exactly as
// contracts.TaskLogSummary.Apply folds the log, in one batch for many
// tasks, and a refused append leaves it alone.
func runSummaryReader(t *testing.T, newStore func(t *testing.T) contracts.EventStore) {
	t.Run("SummaryFollowsAppends", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		sr := summaryReader(t, store)
		must := mustDraft(t)
		expires := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
		suspend := func(id string) contracts.EventDraft {
			return must(contracts.Suspended(contracts.SuspendedPayload{SuspendID: id, Kind: contracts.KindUserActionRequired,
				ReasonCode: "approval_required", AllowedActions: []string{"approve"}, SchemaVersion: 1, ExpiresAt: &expires}))
		}
		accept := func(id string) contracts.EventDraft {
			return must(contracts.ActionAccepted(contracts.ActionAcceptedPayload{SuspendID: id, ClientActionID: "a-" + id,
				ActionType: "approve", AcceptedAt: expires}))
		}
		steps := []struct {
			name  string
			draft contracts.EventDraft
		}{
			{"started", contracts.Started("go")},
			{"progress", must(contracts.Progress(10, "load", "loading"))},
			{"message keeps the progress", must(contracts.Message("hi", contracts.LevelInfo))},
			{"progress again", must(contracts.Progress(40.5, "render", ""))},
			{"suspended", suspend("s1")},
			{"an accept of another suspension keeps it open", accept("s0")},
			{"its accept closes it", accept("s1")},
			{"suspended again", suspend("s2")},
			{"the terminal event closes it", must(contracts.Failed("BOOM", "it broke", true))},
		}
		var want contracts.TaskLogSummary
		for _, step := range steps {
			ev, err := store.Append(ctx, "task-1", step.draft)
			require.NoError(t, err, step.name)
			want.Apply(&ev)
			got, err := sr.Summaries(ctx, []string{"task-1"})
			require.NoError(t, err, step.name)
			require.Len(t, got, 1)
			requireSameSummary(t, want, got[0], step.name)
		}
		assert.Equal(t, contracts.EventFailed, want.TerminalType)
		assert.Nil(t, want.Suspended)
		assert.JSONEq(t, `{"progress":40.5,"stage":"render"}`, string(want.Progress))

		_, err := store.Append(ctx, "task-1", must(contracts.Progress(99, "", "")))
		require.ErrorIs(t, err, contracts.ErrTerminal)
		got, err := sr.Summaries(ctx, []string{"task-1"})
		require.NoError(t, err)
		requireSameSummary(t, want, got[0], "a refused append changes nothing")
	})

	t.Run("SummariesInOneBatch", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		sr := summaryReader(t, store)
		must := mustDraft(t)
		var a, b contracts.TaskLogSummary
		for _, d := range []contracts.EventDraft{contracts.Started(""), must(contracts.Progress(5, "", "a"))} {
			ev, err := store.Append(ctx, "task-a", d)
			require.NoError(t, err)
			a.Apply(&ev)
		}
		ev, err := store.Append(ctx, "task-b", must(contracts.Completed(map[string]int{"n": 1})))
		require.NoError(t, err)
		b.Apply(&ev)

		got, err := sr.Summaries(ctx, []string{"task-b", "unknown", "task-a", "task-b", ""})
		require.NoError(t, err)
		require.Len(t, got, 5)
		requireSameSummary(t, b, got[0], "task-b")
		requireSameSummary(t, contracts.TaskLogSummary{}, got[1], "an unknown task has the zero summary")
		requireSameSummary(t, a, got[2], "task-a")
		requireSameSummary(t, b, got[3], "task-b again")
		requireSameSummary(t, contracts.TaskLogSummary{}, got[4], "the empty id")
		assert.JSONEq(t, `{"result":{"n":1}}`, string(got[0].Terminal))

		got, err = sr.Summaries(ctx, nil)
		require.NoError(t, err)
		assert.Empty(t, got)
	})
}

// summaryReader returns store as a SummaryReader or skips the test.
func summaryReader(tb testing.TB, store contracts.EventStore) contracts.SummaryReader {
	tb.Helper()
	sr, ok := store.(contracts.SummaryReader)
	if !ok {
		tb.Skipf("storetest: %T does not implement contracts.SummaryReader", store)
	}
	return sr
}

// requireSameSummary fails unless got equals want: same ids and types,
// the same instants and equal JSON payloads.
func requireSameSummary(tb testing.TB, want, got contracts.TaskLogSummary, name string) {
	tb.Helper()
	require.Equal(tb, want.LastEventID, got.LastEventID, "%s: LastEventID", name)
	requireSameTime(tb, ms(want.LastEventAt), ms(got.LastEventAt), name+": LastEventAt")
	require.Equal(tb, want.TerminalType, got.TerminalType, "%s: TerminalType", name)
	for _, p := range []struct {
		field     string
		want, got json.RawMessage
	}{{"Progress", want.Progress, got.Progress}, {"Suspended", want.Suspended, got.Suspended}, {"Terminal", want.Terminal, got.Terminal}} {
		if p.want == nil {
			require.Nil(tb, p.got, "%s: %s", name, p.field)
			continue
		}
		require.JSONEq(tb, string(p.want), string(p.got), "%s: %s", name, p.field)
	}
}
