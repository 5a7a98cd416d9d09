package fiberbridge

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/spec"
)

// OpenAPIHandler returns the handler of the opt-in OpenAPI route
// (Routes.OpenAPI, a task route): the OpenAPI 3.1 document (package spec;
// the bridge's additions carry x-taskbridge-extension) of the task routes
// mounted with it and of the probes RegisterProbes mounted, at their full
// paths. The prefix of the router the request came through is the matched
// route's path with the base path and Routes.OpenAPI cut off, so a bridge
// registered on a group (say "/api/projects/:projectId") describes
// "/api/projects/{projectId}/api/v1/tasks" with the projectId parameter.
// Mounted by hand at another path, it describes the task routes without a
// router prefix. It is not authenticated; documents are built once per
// prefix, at the first request (mount everything before serving).
func (b *Bridge) OpenAPIHandler() fiber.Handler {
	var cache sync.Map // prefix -> []byte
	own := b.cfg.BasePath + b.cfg.Routes.OpenAPI
	return b.publicHandler(func(c *fiber.Ctx) error {
		prefix, ok := strings.CutSuffix(routePath(c), own)
		if !ok {
			prefix = ""
		}
		if doc, ok := cache.Load(prefix); ok {
			return writeBody(c, http.StatusOK, doc.([]byte))
		}
		doc, err := b.openAPIDocument(prefix)
		if err != nil {
			return bridgeerr.Wrap(bridgeerr.CodeInternal, err, "internal error")
		}
		cache.Store(strings.Clone(prefix), doc)
		return writeBody(c, http.StatusOK, doc)
	})
}

// openAPIDocument builds the document of the task routes under prefix and
// of the probes where RegisterProbes mounted them.
func (b *Bridge) openAPIDocument(prefix string) ([]byte, error) {
	var routes []spec.Route
	for _, rt := range b.taskRoutes() {
		routes = append(routes, spec.Route{OperationID: rt.op, Method: rt.method, Path: joinPath(prefix, b.cfg.BasePath+rt.path)})
	}
	for _, pp := range b.probes.list() {
		for _, rt := range b.probeRoutes() {
			routes = append(routes, spec.Route{OperationID: rt.op, Method: rt.method, Path: joinPath(pp, rt.path)})
		}
	}
	return spec.Build(routes)
}

// probeSet records the prefixes of the routers RegisterProbes mounted the
// probes on (an app: "", a group: its prefix; other routers count as ""),
// for the OpenAPI document. It is safe for concurrent use.
type probeSet struct {
	mu       sync.Mutex
	prefixes []string
}

func (p *probeSet) add(router fiber.Router) {
	prefix := ""
	if g, ok := router.(*fiber.Group); ok {
		prefix = g.Prefix
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.prefixes, prefix) {
		p.prefixes = append(p.prefixes, prefix)
	}
}

func (p *probeSet) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.prefixes)
}

// joinPath joins a router prefix and a route path as Fiber does.
func joinPath(prefix, path string) string {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return path
	}
	if path == "/" {
		return prefix
	}
	return prefix + path
}
