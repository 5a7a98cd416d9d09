package web

import (
	"embed"
	"io/fs"
	"path"

	"github.com/gofiber/fiber/v2"
)

// The paths Register serves. PagePath is the page itself; the page loads
// its script and stylesheet from the two asset paths, and the script
// imports the TaskBridge TypeScript client's modules from ClientPath.
const (
	PagePath   = "/"
	ScriptPath = "/demo/app.js"
	StylePath  = "/demo/style.css"
	ClientPath = "/demo/taskbridge/"
)

// The client's modules in taskbridge/ are the build output of clients/js
// (npm run build copies them here), committed so the quickstart builds
// without npm.
//
//go:embed index.html app.js style.css taskbridge/*.js
var files embed.FS

// contentSecurityPolicy lets the page load only its own script and styles
// and connect only to its own origin (which, for 'self', includes ws: and
// wss: on the same host and port).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file with the headers it is served with.
type asset struct {
	body        []byte
	contentType string
	csp         bool
}

func load(name, contentType string, csp bool) asset {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("web: embedded " + name + " is missing: " + err.Error()) // a build defect, caught by the tests
	}
	return asset{body: b, contentType: contentType, csp: csp}
}

// Register mounts the demo page on r: GET (and HEAD) PagePath serves the
// page, ScriptPath and StylePath its script and stylesheet. The files are
// embedded in the binary and served from memory; the handlers are safe for
// concurrent use and hold no state. Register r at the root of the origin
// that serves the TaskBridge routes at their default paths, since the page
// calls /api/v1/... on its own origin.
func Register(r fiber.Router) {
	r.Get(PagePath, serve(load("index.html", fiber.MIMETextHTMLCharsetUTF8, true)))
	r.Get(ScriptPath, serve(load("app.js", "text/javascript; charset=utf-8", false)))
	r.Get(StylePath, serve(load("style.css", "text/css; charset=utf-8", false)))
	modules, err := fs.Glob(files, "taskbridge/*.js")
	if err != nil || len(modules) == 0 {
		panic("web: the embedded TaskBridge client is missing") // a build defect, caught by the tests
	}
	for _, name := range modules {
		r.Get(ClientPath+path.Base(name), serve(load(name, "text/javascript; charset=utf-8", false)))
	}
}

// serve returns the handler that answers with a: no-cache (the page
// changes with the binary), nosniff, and for the page its CSP.
func serve(a asset) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, a.contentType)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		if a.csp {
			c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy)
			c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		}
		return c.Send(a.body)
	}
}
