package fiberbridge

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// StreamTickets configures stream tickets (Config.StreamTickets): an
// authenticated POST to Routes.StreamTicket returns a short-lived,
// single-use ticket for one task, and the SSE and WebSocket routes accept
// it in the "ticket" query parameter in place of the caller's credentials.
// Browsers need this: EventSource and browser WebSockets cannot send an
// Authorization header, and a long-lived token in a URL ends up in proxy
// logs and browser history. A ticket is worth one stream of one task for
// one minute.
type StreamTickets struct {
	// Store keeps issued tickets until they are redeemed or expire; setting
	// it turns tickets on. Tickets are stored under their SHA-256, never in
	// clear. With several instances use a shared store
	// (redisstore.NewTicketStore), so a ticket issued on one instance is
	// redeemed on another; memstore.NewTicketStore serves one process.
	//
	// Optional. Default: nil (no ticket route; the streams take only the
	// AuthResolver's credentials).
	Store contracts.TicketStore

	// TTL is how long an issued ticket stays redeemable.
	//
	// Optional. Default: DefaultStreamTicketTTL (60 s).
	TTL time.Duration
}

// DefaultStreamTicketTTL is the default of StreamTickets.TTL.
const DefaultStreamTicketTTL = 60 * time.Second

// ticketPrefix starts every ticket, so a leaked one is recognisable.
const ticketPrefix = "tbt_"

// ticketKey is the store key of a ticket: its SHA-256 in hex.
func ticketKey(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return hex.EncodeToString(sum[:])
}

// streamTicketResponse is the body of a 201 from the ticket route.
type streamTicketResponse struct {
	Ticket    string `json:"ticket"`
	TaskID    string `json:"taskId"`
	ExpiresAt string `json:"expiresAt"`
}

// StreamTicketHandler returns the handler of POST
// /api/v1/tasks/:taskId/stream-ticket: for a caller who may see the task,
// 201 {"ticket","taskId","expiresAt"} with Cache-Control: no-store; a
// missing or foreign task answers 404 as on every route. The request body
// is ignored. Config.StreamTickets.Store must be set.
func (b *Bridge) StreamTicketHandler() fiber.Handler {
	return b.handler(b.issueTicket)
}

func (b *Bridge) issueTicket(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	store := b.cfg.StreamTickets.Store
	if store == nil {
		return bridgeerr.New(bridgeerr.CodeInternal, "stream tickets are not configured")
	}
	taskID, err := parseTaskID(c.Params(TaskIDParam))
	if err != nil {
		return err
	}
	if _, err := s.Subscription.Authorize(c.UserContext(), auth, taskID); err != nil {
		return err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInternal, err, "internal error")
	}
	ticket := ticketPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	expires := b.clock().Add(b.ticketTTL()).Round(time.Millisecond)
	if err := store.Put(c.UserContext(), ticketKey(ticket), contracts.StreamTicket{
		TaskID: taskID, Auth: auth, ExpiresAt: expires,
	}); err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInternal, err, "internal error")
	}
	// The ticket itself is never logged.
	b.log.Info("http.task.stream_ticket", observe.Entry{TaskID: taskID, UserID: auth.Subject, Outcome: "issued"})
	c.Set(fiber.HeaderCacheControl, "no-store")
	return writeJSON(c, http.StatusCreated, streamTicketResponse{
		Ticket: ticket, TaskID: taskID, ExpiresAt: expires.UTC().Format(contracts.TimeLayout),
	})
}

func (b *Bridge) ticketTTL() time.Duration {
	if ttl := b.cfg.StreamTickets.TTL; ttl > 0 {
		return ttl
	}
	return DefaultStreamTicketTTL
}

// ticketRoute is the path Register mounts the ticket route on: Disabled
// while tickets are off.
func (b *Bridge) ticketRoute() string {
	if b.cfg.StreamTickets.Store == nil {
		return Disabled
	}
	return b.cfg.Routes.StreamTicket
}

// ticketed wraps a stream route: a request with a "ticket" query parameter
// is authenticated by redeeming that ticket (SetAuth with the context it
// was issued to; the AuthResolver does not run) and may only stream the
// ticket's task. An unknown, used or expired ticket answers 401
// AUTHENTICATION_ERROR. Without tickets configured the parameter is
// ignored.
func (b *Bridge) ticketed(next fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		store := b.cfg.StreamTickets.Store
		raw := c.Query(contracts.QueryStreamTicket)
		if store == nil || raw == "" || b.skip(c) {
			return next(c)
		}
		start := time.Now()
		t, err := store.Take(c.UserContext(), ticketKey(raw))
		if err != nil {
			if errors.Is(err, contracts.ErrNotFound) {
				err = bridgeerr.New(bridgeerr.CodeAuthentication, "invalid or expired stream ticket")
			} else {
				err = bridgeerr.Wrap(bridgeerr.CodeInternal, err, "internal error")
			}
			b.fail(c, start, err)
			return nil
		}
		SetAuth(c, t.Auth)
		c.Locals(ticketTaskKey, t.TaskID)
		return next(c)
	}
}

// checkTicketTask refuses a ticket-authenticated request for another task
// than the ticket's.
func checkTicketTask(c *fiber.Ctx, taskID string) error {
	if want, ok := c.Locals(ticketTaskKey).(string); ok && want != taskID {
		return errTicketTask
	}
	return nil
}

var errTicketTask = bridgeerr.New(bridgeerr.CodeAuthentication, "the stream ticket is for another task")
