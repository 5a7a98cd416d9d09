package contracts

import (
	"errors"
	"fmt"
	"time"
)

// Sentinels of LimitError.Err: what kind of limit refused a write.
var (
	// ErrQuotaExceeded: one subject (owner) reached its share; others can
	// still write. Clients get 429 QUOTA_EXCEEDED with Retry-After.
	ErrQuotaExceeded = errors.New("taskbridge: quota exceeded")
	// ErrStoreFull: the store as a whole is full. Clients get 507
	// STORAGE_FULL.
	ErrStoreFull = errors.New("taskbridge: store full")
)

// LimitError is a write refused by a limit of a store or a service. Nothing
// was written. It wraps Err (ErrQuotaExceeded or ErrStoreFull) for
// errors.Is.
type LimitError struct {
	// Err is ErrQuotaExceeded or ErrStoreFull.
	Err error
	// Limit names the limit ("tasksPerSubject", "bytes", ...), as the
	// option that sets it is documented.
	Limit string
	// Max is the limit's value.
	Max int64
	// RetryAfter is when trying again may succeed; 0 when unknown.
	RetryAfter time.Duration
}

// Error implements error.
func (e *LimitError) Error() string {
	return fmt.Sprintf("%v: %s (limit %d)", e.Err, e.Limit, e.Max)
}

// Unwrap returns Err.
func (e *LimitError) Unwrap() error { return e.Err }
