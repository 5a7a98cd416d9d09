package memstore

import (
	"context"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// TicketStore is the in-memory contracts.TicketStore of one process. It is
// safe for concurrent use. Expired tickets are dropped as new ones come in,
// so memory stays bounded by the tickets issued within one lifetime.
type TicketStore struct {
	clock func() time.Time
	mu    sync.Mutex
	m     map[string]contracts.StreamTicket
	puts  int // Puts since the last sweep of expired tickets
}

var _ contracts.TicketStore = (*TicketStore)(nil)

// ticketSweepEvery is how many Puts pass between sweeps of expired tickets.
const ticketSweepEvery = 256

// NewTicketStore returns an empty ticket store; only opts.Clock is used.
func NewTicketStore(opts Options) *TicketStore {
	return &TicketStore{clock: opts.config().clock, m: map[string]contracts.StreamTicket{}}
}

// Put implements contracts.TicketStore.
func (s *TicketStore) Put(ctx context.Context, key string, t contracts.StreamTicket) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.puts++; s.puts >= ticketSweepEvery {
		s.puts = 0
		now := s.clock()
		for k, v := range s.m {
			if !now.Before(v.ExpiresAt) {
				delete(s.m, k)
			}
		}
	}
	t.Auth.Scopes = append([]string(nil), t.Auth.Scopes...)
	s.m[key] = t
	return nil
}

// Take implements contracts.TicketStore.
func (s *TicketStore) Take(ctx context.Context, key string) (contracts.StreamTicket, error) {
	if err := ctx.Err(); err != nil {
		return contracts.StreamTicket{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[key]
	if !ok {
		return contracts.StreamTicket{}, contracts.ErrNotFound
	}
	delete(s.m, key)
	if !s.clock().Before(t.ExpiresAt) {
		return contracts.StreamTicket{}, contracts.ErrNotFound
	}
	return t, nil
}
