package fiberbridge

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

// ErrorHandler is a fiber.ErrorHandler that answers any error with the
// stable JSON envelope. Install it on the host app,
//
//	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
//
// so that failures no route handler sees are envelopes too: a body over the
// app's BodyLimit (rejected by fasthttp before any handler runs, 413), an
// unknown route (404) or method (405), oversized headers (431), and errors
// returned by the host's own middleware. The bridge's routes render their
// own errors, so they answer envelopes even on an app with Fiber's default
// error handler.
//
// A *bridgeerr.Error is rendered as is; a *fiber.Error keeps its status
// (404, an unknown route, with code ROUTE_NOT_FOUND and the message "route
// not found"; other 4xx INVALID_REQUEST, 401 AUTHENTICATION_ERROR, 422
// REQUEST_VALIDATION_ERROR, 503 SERVICE_UNAVAILABLE, other 5xx
// INTERNAL_ERROR); any other error is a 500 INTERNAL_ERROR whose envelope
// says only "internal error". An error raised before any route ran (fasthttp
// could not parse the request, or no route matched) is answered with a
// generic message for its status ("invalid request" for a 400): fasthttp's
// parse errors quote the raw request, Authorization header included, and
// none of it is echoed. It always returns nil.
func ErrorHandler(c *fiber.Ctx, err error) error {
	be := toBridgeError(err)
	if !routeRan(c) {
		be = genericFiberError(err, be)
	}
	writeError(c, be, time.Now())
	return nil
}

// routeRan reports whether Fiber matched a route for c. For an error that
// fasthttp raised while reading the request, Fiber calls the error handler
// with a context that has no route (Ctx.Route then returns a stand-in
// without handlers); every registered route has at least one handler.
func routeRan(c *fiber.Ctx) bool {
	return len(c.Route().Handlers) > 0
}

// genericFiberError replaces the message of be, when err is a *fiber.Error,
// by a fixed text for its status, so nothing fasthttp quoted from the
// request reaches the client.
func genericFiberError(err error, be *bridgeerr.Error) *bridgeerr.Error {
	var fe *fiber.Error
	status := be.HTTPStatus()
	if !errors.As(err, &fe) || status == http.StatusRequestEntityTooLarge || status >= 500 ||
		be.Code == bridgeerr.CodeRouteNotFound {
		return be // fixed messages already
	}
	msg := strings.ToLower(http.StatusText(status))
	if status == http.StatusBadRequest || msg == "" {
		msg = "invalid request"
	}
	return bridgeerr.New(be.Code, msg).WithStatus(status)
}

// toBridgeError maps err to the *bridgeerr.Error it is answered with.
func toBridgeError(err error) *bridgeerr.Error {
	var be *bridgeerr.Error
	if errors.As(err, &be) {
		return be
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return fromFiberError(fe)
	}
	return bridgeerr.From(err)
}

// maxFiberMessage bounds the message taken from a *fiber.Error.
const maxFiberMessage = 200

func fromFiberError(fe *fiber.Error) *bridgeerr.Error {
	status := fe.Code
	msg := fe.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	if len(msg) > maxFiberMessage {
		// fasthttp's parse errors quote the request; keep the envelope small.
		msg = strings.ToValidUTF8(msg[:maxFiberMessage], "") + "..."
	}
	switch {
	case status == http.StatusNotFound:
		return bridgeerr.New(bridgeerr.CodeRouteNotFound, "route not found")
	case status == http.StatusUnauthorized:
		return bridgeerr.New(bridgeerr.CodeAuthentication, msg)
	case status == http.StatusUnprocessableEntity:
		return bridgeerr.New(bridgeerr.CodeRequestValidation, msg)
	case status == http.StatusRequestEntityTooLarge:
		return bridgeerr.New(bridgeerr.CodeInvalidRequest, "request body too large").WithStatus(status)
	case status == http.StatusServiceUnavailable:
		return bridgeerr.New(bridgeerr.CodeServiceShuttingDown, "service unavailable")
	case status >= 400 && status < 500:
		return bridgeerr.New(bridgeerr.CodeInvalidRequest, msg).WithStatus(status)
	}
	return bridgeerr.Wrap(bridgeerr.CodeInternal, fe, "internal error")
}

// writeError replaces the response body with be's envelope and sets its
// status. The envelope of a 500 carries no internal detail (see
// bridgeerr.Error.Envelope).
func writeError(c *fiber.Ctx, be *bridgeerr.Error, now time.Time) {
	env := be.Envelope(now)
	body, err := json.Marshal(env)
	if err != nil {
		// Details a host put in its error are not encodable: drop them.
		env.Details = map[string]any{}
		body, _ = json.Marshal(env)
	}
	status := be.HTTPStatus()
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	resp := c.Response()
	resp.ResetBody()
	resp.SetStatusCode(status)
	if secs, ok := be.Details["retryAfterSeconds"].(int64); ok && status == http.StatusTooManyRequests {
		resp.Header.Set(fiber.HeaderRetryAfter, strconv.FormatInt(secs, 10))
	}
	resp.Header.SetContentType(fiber.MIMEApplicationJSONCharsetUTF8)
	resp.SetBodyRaw(body)
}

// ErrorHandler returns a fiber.ErrorHandler for a host app that has its own
// error format: it answers the bridge's errors with the envelope and hands
// every other error to fallback (the host's handler; nil means
// fiber.DefaultErrorHandler), so the host's routes keep their format:
//
//	app := fiber.New(fiber.Config{ErrorHandler: bridge.ErrorHandler(hostErrorHandler)})
//
// The bridge's errors are a *bridgeerr.Error, wherever it was returned, and
// any error of a request below the task routes RegisterTasks mounted on an
// app or a group (a body over the app's BodyLimit, an unknown route or
// method below them, an error of a host middleware in front of them). The
// bridge's routes answer their own errors, so they never reach it.
func (b *Bridge) ErrorHandler(fallback fiber.ErrorHandler) fiber.ErrorHandler {
	if fallback == nil {
		fallback = fiber.DefaultErrorHandler
	}
	return func(c *fiber.Ctx, err error) error {
		var be *bridgeerr.Error
		if errors.As(err, &be) || b.mounts.owns(c.Path()) {
			return ErrorHandler(c, err)
		}
		return fallback(c, err)
	}
}

// mountSet holds the path prefixes the task routes were mounted under, as
// segments (":name" and "*" match any one segment). It is safe for
// concurrent use.
type mountSet struct {
	mu       sync.RWMutex
	prefixes [][]string
}

// add records the common prefix of the task route patterns mounted on
// router (an app or a group; other routers are not recorded).
func (m *mountSet) add(router fiber.Router, basePath string, routes []string) {
	var prefix string
	switch r := router.(type) {
	case *fiber.App:
	case *fiber.Group:
		prefix = r.Prefix
	default:
		return
	}
	var common []string
	for i, p := range routes {
		segs := pathSegments(prefix + basePath + p)
		if i == 0 {
			common = segs
			continue
		}
		n := 0
		for n < len(common) && n < len(segs) && common[n] == segs[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) == 0 {
		return // a bridge at the root of the URL space owns no prefix of its own
	}
	m.mu.Lock()
	m.prefixes = append(m.prefixes, common)
	m.mu.Unlock()
}

// owns reports whether path lies below a recorded prefix.
func (m *mountSet) owns(path string) bool {
	segs := pathSegments(path)
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, p := range m.prefixes {
		if len(segs) < len(p) {
			continue
		}
		match := true
		for i, s := range p {
			if s != segs[i] && !strings.HasPrefix(s, ":") && s != "*" {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// pathSegments splits a path into its non-empty segments.
func pathSegments(path string) []string {
	return strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
}
