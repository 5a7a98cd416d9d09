package fiberbridge

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// streamHub is what the bridge needs from the streaming runtime.
type streamHub interface {
	waiter() orchestration.Waiter
	shutdown(ctx context.Context) error
}

// feedHub is a placeholder until the streaming runtime lands: a FeedWaiter
// for long-polls.
type feedHub struct {
	w      *orchestration.FeedWaiter
	cancel context.CancelFunc
	done   chan struct{}
}

func newStreamHub(b *Bridge) streamHub {
	h := &feedHub{w: orchestration.NewFeedWaiter(b.cfg.Stores.Events), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		_ = h.w.Run(ctx)
	}()
	return h
}

func (h *feedHub) waiter() orchestration.Waiter { return h.w }

func (h *feedHub) shutdown(ctx context.Context) error {
	h.cancel()
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StreamEventsHandler returns the SSE handler.
func (b *Bridge) StreamEventsHandler() fiber.Handler {
	return b.handler(func(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
		taskID, err := parseTaskID(c.Params(TaskIDParam))
		if err != nil {
			return err
		}
		if _, err := s.Subscription.Authorize(c.UserContext(), auth, taskID); err != nil {
			return err
		}
		return bridgeerr.Wrap(bridgeerr.CodeServiceShuttingDown, errors.New("not yet wired"), "streaming unavailable")
	})
}

// WebSocketHandler returns the WebSocket handler.
func (b *Bridge) WebSocketHandler() fiber.Handler {
	return b.handler(func(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
		return bridgeerr.Wrap(bridgeerr.CodeServiceShuttingDown, errors.New("not yet wired"), "streaming unavailable")
	})
}
