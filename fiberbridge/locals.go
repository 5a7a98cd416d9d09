package fiberbridge

import (
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// localsKey is the type of the bridge's c.Locals keys. Being unexported, it
// cannot clash with keys of the host or of other middleware.
type localsKey int

const (
	authKey localsKey = iota + 1
	servicesKey
	ticketTaskKey // the task of the stream ticket a request was authenticated with
)

// AuthFrom returns the AuthContext the bridge's middleware resolved for the
// request, and false when it has not run (or failed). Valid only during the
// request.
func AuthFrom(c *fiber.Ctx) (contracts.AuthContext, bool) {
	auth, ok := c.Locals(authKey).(contracts.AuthContext)
	return auth, ok
}

// SetAuth stores auth as the request's AuthContext, for a host whose own
// middleware has authenticated the caller: call it there, in front of the
// task routes, and Config.AuthResolver is not needed (it does not run for
// requests that carry an AuthContext). The strings of auth are copied, so
// values taken from the request may be passed.
//
//	api := app.Group("/jobs", hostAuth, func(c *fiber.Ctx) error {
//		fiberbridge.SetAuth(c, contracts.AuthContext{Subject: userFrom(c)})
//		return c.Next()
//	})
//	bridge.RegisterTasks(api)
func SetAuth(c *fiber.Ctx, auth contracts.AuthContext) {
	c.Locals(authKey, cloneAuth(auth))
}

// ServicesFrom returns the services the request uses: those a host
// middleware set with SetServices, else the bridge's (once its middleware
// ran). The bool is false when neither is set.
func ServicesFrom(c *fiber.Ctx) (*orchestration.Services, bool) {
	s, ok := c.Locals(servicesKey).(*orchestration.Services)
	return s, ok && s != nil
}

// SetServices makes the request use s instead of the bridge's services, for
// hosts that route tenants to their own services. Call it in a middleware
// that runs before the bridge's routes. The streaming hub still reads the
// bridge's Stores.Events, so per-request services must share that event
// store for SSE and WebSocket; they decide access (ownership) for every
// route.
func SetServices(c *fiber.Ctx, s *orchestration.Services) {
	c.Locals(servicesKey, s)
}

// Middleware returns the locals middleware: it stores the bridge's services
// in c.Locals unless a host middleware already set some (SetServices), and
// resolves the caller's AuthContext once with Config.AuthResolver (unless
// SetAuth already did). A failed resolution answers the 401 envelope and
// stops the chain. Register runs the same steps inside every route, so
// Middleware is only needed by hosts that assemble routes by hand and want
// AuthFrom in their own handlers. Config.Next skips it.
func (b *Bridge) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if b.skip(c) {
			return c.Next()
		}
		start := time.Now()
		err := b.ensureLocals(c)
		if err != nil {
			b.fail(c, start, err)
			return nil
		}
		return c.Next()
	}
}

func (b *Bridge) ensureServices(c *fiber.Ctx) *orchestration.Services {
	if s, ok := ServicesFrom(c); ok {
		return s
	}
	c.Locals(servicesKey, b.services)
	return b.services
}

// ensureLocals puts the services and the AuthContext in locals unless they
// are there already.
func (b *Bridge) ensureLocals(c *fiber.Ctx) error {
	b.ensureServices(c)
	if _, ok := AuthFrom(c); ok {
		return nil
	}
	auth, err := b.resolveAuth(c)
	if err != nil {
		return err
	}
	c.Locals(authKey, auth)
	return nil
}

// resolveAuth calls the AuthResolver, turning a panic or a foreign error
// into AUTHENTICATION_ERROR (the resolver's text is not shown to clients).
func (b *Bridge) resolveAuth(c *fiber.Ctx) (auth contracts.AuthContext, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = bridgeerr.Wrap(bridgeerr.CodeInternal, panicError(r), "internal error")
		}
	}()
	if b.cfg.AuthResolver == nil {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication, "authentication required")
	}
	auth, err = b.cfg.AuthResolver(c)
	if err == nil {
		return cloneAuth(auth), nil
	}
	var be *bridgeerr.Error
	if errors.As(err, &be) {
		return contracts.AuthContext{}, be
	}
	return contracts.AuthContext{}, bridgeerr.Wrap(bridgeerr.CodeAuthentication, err, "authentication required")
}

// locals returns the request's services and AuthContext after
// ensureLocals.
func (b *Bridge) locals(c *fiber.Ctx) (*orchestration.Services, contracts.AuthContext, error) {
	if err := b.ensureLocals(c); err != nil {
		return nil, contracts.AuthContext{}, err
	}
	s, _ := ServicesFrom(c)
	auth, _ := AuthFrom(c)
	return s, auth, nil
}

// cloneAuth copies the strings of auth, which a resolver may have taken from
// the request's recycled buffers; the AuthContext outlives the request on
// WebSocket connections. Attributes are kept as given.
func cloneAuth(a contracts.AuthContext) contracts.AuthContext {
	a.Subject = strings.Clone(a.Subject)
	a.AppID = strings.Clone(a.AppID)
	if a.Scopes != nil {
		scopes := make([]string, len(a.Scopes))
		for i, s := range a.Scopes {
			scopes[i] = strings.Clone(s)
		}
		a.Scopes = scopes
	}
	return a
}
