package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// TicketStore is the contracts.TicketStore on Redis: a ticket is one string
// key, "<prefix>ticket:<key>", holding the ticket as JSON with a TTL up to
// its expiry; Take is GETDEL (Redis 6.2 or newer), so a ticket issued by one
// instance is redeemed once, on any instance.
type TicketStore struct {
	client redis.UniversalClient
	keys   keys
	clock  func() time.Time
}

var _ contracts.TicketStore = (*TicketStore)(nil)

// NewTicketStore returns the ticket store on client; opts.KeyPrefix and
// opts.Clock are used (give every instance the same prefix). It does no
// I/O.
func NewTicketStore(client redis.UniversalClient, opts Options) (*TicketStore, error) {
	if client == nil {
		return nil, errors.New("taskbridge: redisstore.NewTicketStore: client is nil")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &TicketStore{client: client, keys: keys{prefix: cfg.prefix}, clock: cfg.clock}, nil
}

// Put implements contracts.TicketStore. A ticket that has already expired
// is not stored.
func (s *TicketStore) Put(ctx context.Context, key string, t contracts.StreamTicket) error {
	ttl := t.ExpiresAt.Sub(s.clock())
	if ttl <= 0 {
		return nil
	}
	data, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("redisstore: put ticket: encode: %w", err)
	}
	if err := s.client.Set(ctx, s.keys.ticket(key), data, ttl).Err(); err != nil {
		return fmt.Errorf("redisstore: put ticket: %w", err)
	}
	return nil
}

// Take implements contracts.TicketStore.
func (s *TicketStore) Take(ctx context.Context, key string) (contracts.StreamTicket, error) {
	data, err := s.client.GetDel(ctx, s.keys.ticket(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return contracts.StreamTicket{}, contracts.ErrNotFound
	}
	if err != nil {
		return contracts.StreamTicket{}, fmt.Errorf("redisstore: take ticket: %w", err)
	}
	var t contracts.StreamTicket
	if err := json.Unmarshal(data, &t); err != nil {
		return contracts.StreamTicket{}, fmt.Errorf("redisstore: take ticket: decode: %w", err)
	}
	if !s.clock().Before(t.ExpiresAt) {
		return contracts.StreamTicket{}, contracts.ErrNotFound
	}
	return t, nil
}
