package fiberbridge

import (
	"errors"
	"io"
	"time"

	"github.com/gofiber/fiber/v2"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

// ReadBody returns the body of the request, refusing one over limit bytes
// (limit <= 0: no limit of its own) with 413 INVALID_REQUEST. On an app
// with fiber.Config.StreamRequestBody (see AppConfig) fasthttp hands the
// handler a stream instead of a body it has read whole; ReadBody then
// refuses a declared Content-Length over limit before reading anything and
// reads the rest as it arrives, so memory grows with the bytes received,
// never with what a client declares. The app's ReadTimeout bounds how long
// a client may take to send it. A host route that reads bodies on such an
// app should use ReadBody (c.Body() reads a stream whole, without the
// app's BodyLimit).
func ReadBody(c *fiber.Ctx, limit int) ([]byte, error) {
	req := c.Request()
	if !req.IsBodyStream() {
		body := req.Body()
		if limit > 0 && len(body) > limit {
			return nil, bodyTooLarge(int64(limit))
		}
		return body, nil
	}
	if limit > 0 && req.Header.ContentLength() > limit {
		return nil, bodyTooLarge(int64(limit))
	}
	r := req.BodyStream()
	if limit > 0 {
		r = io.LimitReader(r, int64(limit)+1)
	}
	body, err := io.ReadAll(r)
	switch {
	case err != nil && isTimeout(err):
		return nil, bodyTimeout()
	case err != nil:
		return nil, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "request body incomplete").
			WithDetails(map[string]any{"reason": "the body ended before its declared length"})
	case limit > 0 && len(body) > limit:
		return nil, bodyTooLarge(int64(limit))
	}
	// Later readers (c.Body(), a CreatePreprocessor) see the same bytes.
	req.SetBodyRaw(body)
	return body, nil
}

// bodyTimeout is the answer to a streamed body the app's ReadTimeout cut
// off before it arrived whole: 408 INVALID_REQUEST, whatever the body's
// form (JSON or multipart).
func bodyTimeout() *bridgeerr.Error {
	return bridgeerr.New(bridgeerr.CodeInvalidRequest, "request body not received in time").
		WithStatus(fiber.StatusRequestTimeout)
}

// isTimeout reports whether err is a read deadline that passed.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// Timeouts AppConfig sets when the app leaves them zero.
const (
	// AppReadTimeout bounds reading one request (headers and body).
	AppReadTimeout = 30 * time.Second
	// AppWriteTimeout bounds writing one response.
	AppWriteTimeout = 30 * time.Second
	// AppIdleTimeout closes a keep-alive connection idle that long.
	AppIdleTimeout = 60 * time.Second
)

// AppConfig returns cfg with the settings SECURITY.md asks of a host app
// that faces the internet:
//
//   - ErrorHandler: ErrorHandler, when nil (envelopes for fasthttp's own
//     errors, never echoing request bytes);
//   - ReadTimeout, WriteTimeout, IdleTimeout: AppReadTimeout (30 s),
//     AppWriteTimeout (30 s), AppIdleTimeout (60 s), each when zero.
//     fasthttp's default is no timeout at all, so a client trickling its
//     headers or body, or sending nothing, would hold a connection
//     forever. Streams the bridge takes over and long-polls waiting in a
//     handler are not cut by them (the hub owns stream deadlines, and
//     fasthttp arms WriteTimeout only once a handler returned);
//   - StreamRequestBody: true. fasthttp otherwise reserves the whole
//     declared Content-Length (up to BodyLimit) before the first body byte
//     arrives; streamed, it pre-reads at most 8 KiB and the bridge reads the
//     rest under its own limits (ReadBody). Host routes that read bodies
//     must then use ReadBody or their own bounded reader;
//   - DisablePreParseMultipartForm: true, so multipart bodies are parsed
//     only by the create route, under its limits, instead of for every
//     request that declares one (an unauthenticated POST /health included).
//
// Other fields are left as they are.
func AppConfig(cfg fiber.Config) fiber.Config {
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = ErrorHandler
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = AppReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = AppWriteTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = AppIdleTimeout
	}
	cfg.StreamRequestBody = true
	cfg.DisablePreParseMultipartForm = true
	return cfg
}
