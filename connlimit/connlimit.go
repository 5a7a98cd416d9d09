package connlimit

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Config configures a Listener. Zero fields take their defaults.
type Config struct {
	// Max is the most connections held at once (accepted and not yet
	// closed, including descriptors kept with Conn.Hold). New returns an
	// error when Max is negative or cannot be derived.
	//
	// Optional. Default: the process's open-file limit (soft
	// RLIMIT_NOFILE) minus Reserve.
	Max int

	// Reserve is how many descriptors the default Max leaves for
	// everything else: the listener, store and log connections, files,
	// the streaming runtime's epoll set, and the descriptor a stream
	// duplicates for a moment while it is detached. Unused when Max is set.
	//
	// Optional. Default: an eighth of the limit, at least 64.
	Reserve int

	// MaxBackoff bounds the wait between attempts after a temporary accept
	// error (the first wait is 5 ms, doubling).
	//
	// Optional. Default: 1 s.
	MaxBackoff time.Duration

	// Logger receives a warning (at most one per second) when Accept backs
	// off or waits for a slot.
	//
	// Optional. Default: zap.NewNop().
	Logger *zap.Logger
}

// minBackoff is the first wait after a temporary accept error.
const minBackoff = 5 * time.Millisecond

// Listener is a net.Listener that holds at most Max connections and
// survives temporary accept errors. Its methods are safe for concurrent
// use. Close closes the wrapped listener and wakes a waiting Accept;
// connections already accepted stay open (their owner closes them).
type Listener struct {
	net.Listener
	sem        chan struct{} // one element per held slot
	done       chan struct{}
	closeOnce  sync.Once
	maxBackoff time.Duration
	log        *zap.Logger
	lastWarn   atomic.Int64 // UnixNano of the last warning
	waits      atomic.Int64
	backoffs   atomic.Int64
}

// New wraps ln. It returns an error for a negative Max or Reserve, or when
// Max is 0 and the open-file limit cannot be read or leaves no room after
// Reserve.
func New(ln net.Listener, config ...Config) (*Listener, error) {
	var cfg Config
	if len(config) > 0 {
		cfg = config[0]
	}
	if ln == nil {
		return nil, errors.New("taskbridge: connlimit.New: nil listener")
	}
	if cfg.Max < 0 || cfg.Reserve < 0 {
		return nil, fmt.Errorf("taskbridge: connlimit.New: Max (%d) and Reserve (%d) must not be negative", cfg.Max, cfg.Reserve)
	}
	if cfg.Max == 0 {
		limit, err := openFileLimit()
		if err != nil {
			return nil, fmt.Errorf("taskbridge: connlimit.New: set Max: %w", err)
		}
		reserve := cfg.Reserve
		if reserve == 0 {
			reserve = max(64, limit/8)
		}
		cfg.Max = limit - reserve
		if cfg.Max <= 0 {
			return nil, fmt.Errorf("taskbridge: connlimit.New: the open-file limit %d leaves no room after Reserve %d", limit, reserve)
		}
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Listener{
		Listener:   ln,
		sem:        make(chan struct{}, cfg.Max),
		done:       make(chan struct{}),
		maxBackoff: cfg.MaxBackoff,
		log:        cfg.Logger,
	}, nil
}

// Accept waits for a free slot, then for a connection. It returns a *Conn,
// or net.ErrClosed (wrapped) once the listener is closed, or an error
// accepting cannot recover from.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.waits.Add(1)
		l.warn("connection limit reached; waiting for connections to close", zap.Int("max", cap(l.sem)))
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, fmt.Errorf("taskbridge: connlimit: %w", net.ErrClosed)
		}
	}
	wait := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			lc := &Conn{Conn: c, l: l}
			lc.refs.Store(1)
			return lc, nil
		}
		if !temporary(err) {
			<-l.sem
			return nil, err
		}
		wait = min(max(2*wait, minBackoff), l.maxBackoff)
		l.backoffs.Add(1)
		l.warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", wait))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			<-l.sem
			return nil, fmt.Errorf("taskbridge: connlimit: %w", net.ErrClosed)
		}
	}
}

// Close closes the wrapped listener and wakes a waiting Accept.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Max is the most connections the listener holds at once.
func (l *Listener) Max() int { return cap(l.sem) }

// Open is the number of slots held now.
func (l *Listener) Open() int { return len(l.sem) }

// Stats are counters of a Listener since New.
type Stats struct {
	// Waits counts Accept calls that found every slot taken.
	Waits int64
	// Backoffs counts temporary accept errors waited out.
	Backoffs int64
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	return Stats{Waits: l.waits.Load(), Backoffs: l.backoffs.Load()}
}

// warn logs at most once per second.
func (l *Listener) warn(msg string, fields ...zap.Field) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn(msg, fields...)
}

// temporary reports whether an accept error may heal by itself: the
// process or system ran out of descriptors or buffers, or one pending
// connection failed before it was accepted.
func temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
			syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
			syscall.ETIMEDOUT, syscall.EPROTO, syscall.EPERM:
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Conn is a connection accepted by a Listener; closing it gives its slot
// back unless a Hold is still open.
type Conn struct {
	net.Conn
	l      *Listener
	refs   atomic.Int32 // 1 for the connection until Close, +1 per open Hold
	closed atomic.Bool
}

// Close closes the connection and, unless a Hold is open, gives its slot
// back. It is safe to call more than once.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.unref()
	}
	return err
}

// NetConn returns the connection underneath (as crypto/tls.Conn.NetConn
// does), for code that needs the socket itself.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Hold keeps the connection's slot taken, also after Close, until release
// is called: for a descriptor duplicated from this connection's socket
// (the streaming runtime's detached streams), which keeps the socket open
// on its own. release may be called more than once; only the first call
// counts.
func (c *Conn) Hold() (release func()) {
	c.refs.Add(1)
	var once sync.Once
	return func() { once.Do(c.unref) }
}

func (c *Conn) unref() {
	if c.refs.Add(-1) == 0 {
		<-c.l.sem
	}
}
