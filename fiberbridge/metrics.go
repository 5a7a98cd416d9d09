package fiberbridge

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// MetricsHandler adapts a net/http metrics handler (typically
// prom.Handler(registry) from observe/prom, or promhttp.Handler()) to a
// Fiber handler, for the one-line Prometheus hook-up:
//
//	app.Get("/metrics", fiberbridge.MetricsHandler(prom.Handler(registry)))
//
// Register never mounts it: exposing metrics is the host's choice, as is
// protecting the route (mount it on an internal listener, or behind the
// host's own middleware). The request is not authenticated by the bridge
// and is not recorded in the request duration histogram. The returned
// handler is safe for concurrent use; h is called once per request, on the
// request's goroutine, with the request converted to net/http.
func MetricsHandler(h http.Handler) fiber.Handler {
	if h == nil {
		panic("taskbridge: fiberbridge.MetricsHandler: nil handler")
	}
	serve := fasthttpadaptor.NewFastHTTPHandler(h)
	return func(c *fiber.Ctx) error {
		serve(c.Context())
		return nil
	}
}
