package redisstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Defaults applied by Options when a field is zero.
const (
	DefaultKeyPrefix        = "taskbridge:"
	DefaultMaxEventsPerTask = 10_000
	DefaultActiveTTL        = 7 * 24 * time.Hour
	DefaultTerminalTTL      = time.Hour
	DefaultReceiptTTL       = 24 * time.Hour
	DefaultFeedPingInterval = 5 * time.Second
)

// Options configures the Redis stores. The zero value is usable; every field
// is optional. The same Options (at least the same KeyPrefix) must be given
// to every store of one deployment, on every instance, or the instances will
// not see each other's data.
type Options struct {
	// KeyPrefix starts every key and the change-feed channel name. It must
	// not contain '{' or '}', which would break the hash tags.
	// Optional. Default: "taskbridge:".
	KeyPrefix string
	// MaxEventsPerTask caps each task's stream. The cap is approximate: the
	// append script lets a stream grow by MaxEventsPerTask/16 (at least one)
	// events past the cap, then trims it back to the cap in one go and
	// records the highest trimmed id, which is what Read reports a retention
	// gap against. Optional. Default: 10000; <0 = unbounded.
	MaxEventsPerTask int64
	// ActiveTTL is how long the keys of a task that has not ended live after
	// their last write: the stream and the task record (refreshed on every
	// append, status change and cancellation request), the idempotency key
	// (refreshed on status changes) and open or pending suspensions. It is a
	// backstop that keeps Redis bounded when a worker dies without ending
	// its tasks; the memory store has none. Optional. Default: 7 days; <0 =
	// never expire.
	ActiveTTL time.Duration
	// TerminalTTL is how long a task is kept after it ends, that is after
	// its terminal event or its terminal status, whichever comes first: its
	// stream, its record and its idempotency key. A suspension gets it when
	// it is expired, cancelled or handed off. Optional. Default: 1h (as the
	// memory store); <0 = never expire.
	TerminalTTL time.Duration
	// ReceiptTTL gives a receipt saved with a zero ExpiresAt the ExpiresAt
	// CreatedAt + ReceiptTTL (as the memory store). A receipt lives in Redis
	// until its ExpiresAt. Optional. Default: 24h; <0 = receipts without an
	// ExpiresAt never expire.
	ReceiptTTL time.Duration
	// Clock returns the current time, for timestamps and expiry checks.
	// Event ids always come from the Redis server's clock.
	// Optional. Default: time.Now.
	Clock func() time.Time
	// Logger receives the stores' operational log lines (change-feed
	// reconnects, dropped notices). Optional. Default: zap.NewNop().
	Logger *zap.Logger
	// FeedPingInterval is how long the change feed's subscription may stay
	// silent before it pings Redis; a ping left unanswered for as long again
	// drops the connection and opens a new one (followed by a Resync).
	// Optional. Default: 5s.
	FeedPingInterval time.Duration
}

// config is Options with defaults applied and derived values precomputed.
type config struct {
	prefix      string
	maxEvents   int64 // 0 = unbounded
	trimSlack   int64
	activeTTL   time.Duration // 0 = never
	terminalTTL time.Duration // 0 = never
	receiptTTL  time.Duration // 0 = never
	clock       func() time.Time
	log         *observe.Logger
	pingEvery   time.Duration
}

// ttlOrDefault maps the Options convention (0 = default, <0 = off) to a
// duration where 0 means "never expire".
func ttlOrDefault(d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d == 0:
		return def
	}
	return d
}

// newConfig applies the defaults to opts; it fails on a KeyPrefix with a
// brace.
func newConfig(opts Options) (config, error) {
	c := config{
		prefix:      opts.KeyPrefix,
		maxEvents:   opts.MaxEventsPerTask,
		activeTTL:   ttlOrDefault(opts.ActiveTTL, DefaultActiveTTL),
		terminalTTL: ttlOrDefault(opts.TerminalTTL, DefaultTerminalTTL),
		receiptTTL:  ttlOrDefault(opts.ReceiptTTL, DefaultReceiptTTL),
		clock:       opts.Clock,
		log:         observe.NewLogger(opts.Logger),
		pingEvery:   opts.FeedPingInterval,
	}
	if c.prefix == "" {
		c.prefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(c.prefix, "{}") {
		return config{}, fmt.Errorf("taskbridge: redisstore: KeyPrefix %q must not contain '{' or '}'", c.prefix)
	}
	switch {
	case c.maxEvents < 0:
		c.maxEvents = 0
	case c.maxEvents == 0:
		c.maxEvents = DefaultMaxEventsPerTask
	}
	if c.maxEvents > 0 {
		c.trimSlack = max(c.maxEvents/16, 1)
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.pingEvery <= 0 {
		c.pingEvery = DefaultFeedPingInterval
	}
	return c, nil
}

// now returns the clock's time without its monotonic reading, so stored
// times compare with == and serialise identically (as in memstore).
func (c *config) now() time.Time { return c.clock().Round(0) }

// ms returns d in whole milliseconds for PEXPIRE, 0 for "never".
func ms(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}

// micros is the comparison unit of expiry scores: exact in a Lua double.
func micros(t time.Time) int64 { return t.UnixMicro() }

// warnIfContextTimeoutsOff logs once per store set when the host's client
// ignores context deadlines, which lets a paused Redis hold a call for the
// client's ReadTimeout instead of the caller's deadline.
func warnIfContextTimeoutsOff(client redis.UniversalClient, log *observe.Logger) {
	type optioner interface{ Options() *redis.Options }
	type clusterOptioner interface{ Options() *redis.ClusterOptions }
	off := false
	switch c := client.(type) {
	case optioner:
		off = !c.Options().ContextTimeoutEnabled
	case clusterOptioner:
		off = !c.Options().ContextTimeoutEnabled
	}
	if off {
		log.Warn("redisstore: the Redis client ignores context deadlines; set ContextTimeoutEnabled so calls end with their context",
			observe.Entry{Transport: observe.TransportInternal})
	}
}
