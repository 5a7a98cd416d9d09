package observe_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

func okProbe() observe.Probe { return observe.ProbeFunc(func(context.Context) error { return nil }) }

func failProbe(msg string) observe.Probe {
	return observe.ProbeFunc(func(context.Context) error { return errors.New(msg) })
}

// hungProbe ignores its context and blocks until the test ends; the
// composite must abandon it.
func hungProbe(tb testing.TB) observe.Probe {
	tb.Helper()
	release := make(chan struct{})
	tb.Cleanup(func() { close(release) })
	return observe.ProbeFunc(func(context.Context) error {
		<-release
		return nil
	})
}

func TestCompositeAllPass(t *testing.T) {
	t.Parallel()
	c := observe.NewComposite(time.Second,
		observe.NamedProbe{Name: "store", Probe: okProbe()},
		observe.NamedProbe{Name: "executor", Probe: okProbe()},
	)
	ready, details := c.CheckReadiness(context.Background())
	assert.True(t, ready)
	assert.Equal(t, map[string]any{
		"store":    observe.ProbeResult{Status: observe.ProbeOK},
		"executor": observe.ProbeResult{Status: observe.ProbeOK},
	}, details)
	assert.NoError(t, c.Check(context.Background()))
}

func TestCompositeEmptyIsReady(t *testing.T) {
	t.Parallel()
	ready, details := observe.NewComposite(0).CheckReadiness(context.Background())
	assert.True(t, ready)
	assert.Empty(t, details)
	assert.NotNil(t, details)
}

func TestCompositeOneFailing(t *testing.T) {
	t.Parallel()
	c := observe.NewComposite(time.Second,
		observe.NamedProbe{Name: "store", Probe: failProbe("redis: connection refused")},
		observe.NamedProbe{Name: "executor", Probe: okProbe()},
	)
	ready, results := c.Results(context.Background())
	assert.False(t, ready)
	assert.Equal(t, map[string]observe.ProbeResult{
		"store":    {Status: observe.ProbeFailing, Message: "redis: connection refused"},
		"executor": {Status: observe.ProbeOK},
	}, results)
	assert.EqualError(t, c.Check(context.Background()), "not ready: store failing")
}

func TestCompositeAbandonsHungProbe(t *testing.T) {
	t.Parallel()
	c := observe.NewComposite(20*time.Millisecond,
		observe.NamedProbe{Name: "executor", Probe: okProbe()},
		observe.NamedProbe{Name: "store", Probe: hungProbe(t)},
	)
	// hungProbe only returns after the test ends, so reaching the assertions
	// proves the check did not wait for it.
	ready, results := c.Results(context.Background())
	assert.False(t, ready)
	assert.Equal(t, observe.ProbeResult{Status: observe.ProbeTimeout, Message: "no answer within 20ms"}, results["store"])
	assert.Equal(t, observe.ProbeOK, results["executor"].Status)
}

func TestCompositeProbeHonouringContextTimesOut(t *testing.T) {
	t.Parallel()
	c := observe.NewComposite(10*time.Millisecond, observe.NamedProbe{Name: "store", Probe: observe.ProbeFunc(
		func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})})
	ready, results := c.Results(context.Background())
	assert.False(t, ready)
	assert.Equal(t, observe.ProbeTimeout, results["store"].Status)
	assert.NotEmpty(t, results["store"].Message)
}

func TestCompositeParentContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	hung := hungProbe(t)
	probe := observe.ProbeFunc(func(ctx context.Context) error {
		close(started)
		return hung.Check(ctx)
	})
	go func() {
		<-started
		cancel()
	}()
	// A negative timeout leaves only the caller's context to bound the check.
	ready, results := observe.NewComposite(-1, observe.NamedProbe{Name: "slow", Probe: probe}).Results(ctx)
	assert.False(t, ready)
	assert.Equal(t, observe.ProbeResult{Status: observe.ProbeTimeout, Message: "check abandoned: context canceled"}, results["slow"])
}

func TestCompositeTimeoutSettings(t *testing.T) {
	t.Parallel()
	deadline := func(ctx context.Context) (time.Duration, bool) {
		dl, ok := ctx.Deadline()
		return time.Until(dl), ok
	}
	tests := []struct {
		name    string
		timeout time.Duration
		check   func(ctx context.Context) error
	}{
		{"zero means the default", 0, func(ctx context.Context) error {
			left, ok := deadline(ctx)
			if !ok || left > observe.DefaultProbeTimeout {
				return errors.New("want a deadline within DefaultProbeTimeout")
			}
			return nil
		}},
		{"negative means none", -1, func(ctx context.Context) error {
			if _, ok := deadline(ctx); ok {
				return errors.New("want no deadline")
			}
			return nil
		}},
		{"positive is used", time.Hour, func(ctx context.Context) error {
			left, ok := deadline(ctx)
			if !ok || left <= observe.DefaultProbeTimeout || left > time.Hour {
				return errors.New("want a deadline within an hour")
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := observe.NewComposite(tt.timeout, observe.NamedProbe{Name: "p", Probe: observe.ProbeFunc(tt.check)})
			require.NoError(t, c.Check(context.Background()))
		})
	}
}

func TestCompositeRunsProbesConcurrently(t *testing.T) {
	t.Parallel()
	// Each probe waits until all have started: run one after another, they
	// would time out.
	const n = 4
	var arrived sync.WaitGroup
	arrived.Add(n)
	probes := make([]observe.NamedProbe, n)
	for i := range probes {
		probes[i] = observe.NamedProbe{Name: string(rune('a' + i)), Probe: observe.ProbeFunc(func(ctx context.Context) error {
			arrived.Done()
			allIn := make(chan struct{})
			go func() { arrived.Wait(); close(allIn) }()
			select {
			case <-allIn:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})}
	}
	ready, results := observe.NewComposite(5*time.Second, probes...).Results(context.Background())
	assert.True(t, ready, "%v", results)
}

func TestCompositeRecoversPanics(t *testing.T) {
	t.Parallel()
	c := observe.NewComposite(time.Second, observe.NamedProbe{Name: "boom", Probe: observe.ProbeFunc(
		func(context.Context) error { panic("secret: hunter2") })})
	ready, results := c.Results(context.Background())
	assert.False(t, ready)
	assert.Equal(t, observe.ProbeResult{Status: observe.ProbeFailing, Message: "probe panicked"}, results["boom"])
}

func TestCompositeTruncatesLongMessages(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 300) // 600 bytes
	c := observe.NewComposite(time.Second, observe.NamedProbe{Name: "p", Probe: failProbe(long)})
	_, results := c.Results(context.Background())
	msg := results["p"].Message
	assert.LessOrEqual(t, len(msg), 256+len("…"))
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(msg, "…")))
	assert.True(t, strings.HasSuffix(msg, "…"))
}

func TestCompositeDetailsJSON(t *testing.T) {
	t.Parallel()
	c := observe.NewComposite(20*time.Millisecond,
		observe.NamedProbe{Name: "executor", Probe: okProbe()},
		observe.NamedProbe{Name: "store", Probe: failProbe("ping failed")},
		observe.NamedProbe{Name: "search", Probe: hungProbe(t)},
	)
	ready, details := c.CheckReadiness(context.Background())
	assert.False(t, ready)
	raw, err := json.Marshal(details)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"executor": {"status": "ok", "message": ""},
		"store":    {"status": "failing", "message": "ping failed"},
		"search":   {"status": "timeout", "message": "no answer within 20ms"}
	}`, string(raw))
}

func TestCompositeNests(t *testing.T) {
	t.Parallel()
	inner := observe.NewComposite(time.Second,
		observe.NamedProbe{Name: "a", Probe: failProbe("x")},
		observe.NamedProbe{Name: "b", Probe: okProbe()},
		observe.NamedProbe{Name: "c", Probe: failProbe("y")},
	)
	outer := observe.NewComposite(time.Second, observe.NamedProbe{Name: "deps", Probe: inner})
	_, results := outer.Results(context.Background())
	assert.Equal(t, observe.ProbeResult{Status: observe.ProbeFailing, Message: "not ready: a failing, c failing"}, results["deps"])
}

func TestNewCompositeRejectsBadWiring(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		probes []observe.NamedProbe
		want   string
	}{
		{"empty name", []observe.NamedProbe{{Name: "", Probe: okProbe()}}, "empty name"},
		{"nil probe", []observe.NamedProbe{{Name: "a"}}, `probe "a" is nil`},
		{"duplicate", []observe.NamedProbe{{Name: "a", Probe: okProbe()}, {Name: "a", Probe: okProbe()}}, `duplicate probe name "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				r := recover()
				require.NotNil(t, r)
				assert.Contains(t, r, tt.want)
			}()
			observe.NewComposite(time.Second, tt.probes...)
		})
	}
}

type fakeExecutor struct{ err error }

func (f fakeExecutor) Ready(context.Context) error { return f.err }

type fakeStore struct{ err error }

func (f fakeStore) Check(context.Context) error { return f.err }

func TestExecutorAndStoreProbes(t *testing.T) {
	t.Parallel()
	c := observe.NewComposite(time.Second,
		observe.NamedProbe{Name: "executor", Probe: observe.ExecutorProbe(fakeExecutor{err: errors.New("executor closed")})},
		observe.NamedProbe{Name: "store", Probe: observe.StoreProbe(fakeStore{})},
	)
	ready, results := c.Results(context.Background())
	assert.False(t, ready)
	assert.Equal(t, map[string]observe.ProbeResult{
		"executor": {Status: observe.ProbeFailing, Message: "executor closed"},
		"store":    {Status: observe.ProbeOK},
	}, results)

	assert.Panics(t, func() { observe.ExecutorProbe(nil) })
	assert.Panics(t, func() { observe.StoreProbe(nil) })
}

func TestAlwaysReady(t *testing.T) {
	t.Parallel()
	ready, details := observe.AlwaysReady{}.CheckReadiness(context.Background())
	assert.True(t, ready)
	assert.NotNil(t, details)
}
