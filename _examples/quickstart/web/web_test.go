package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/_examples/quickstart/web"
)

func newApp(tb testing.TB) *fiber.App {
	tb.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	web.Register(app)
	return app
}

func get(tb testing.TB, app *fiber.App, method, path string) (*http.Response, string) {
	tb.Helper()
	resp, err := app.Test(httptest.NewRequest(method, path, nil))
	require.NoError(tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resp, string(body)
}

func TestRegisterServesPageAndAssets(t *testing.T) {
	app := newApp(t)
	tests := []struct {
		name, path, contentType, contains string
		csp                               bool
	}{
		{"page", web.PagePath, "text/html; charset=utf-8", `<main id="app"`, true},
		{"script", web.ScriptPath, "text/javascript; charset=utf-8", "from './taskbridge/index.js'", false},
		{"client", web.ClientPath + "index.js", "text/javascript; charset=utf-8", "TaskBridgeClient", false},
		{"client module", web.ClientPath + "watch.js", "text/javascript; charset=utf-8", "class Watch", false},
		{"style", web.StylePath, "text/css; charset=utf-8", ".progress-bar", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, app, http.MethodGet, tc.path)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tc.contentType, resp.Header.Get("Content-Type"))
			assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			assert.Contains(t, body, tc.contains)
			if tc.csp {
				csp := resp.Header.Get("Content-Security-Policy")
				assert.Contains(t, csp, "script-src 'self'")
				assert.Contains(t, csp, "connect-src 'self'")
			} else {
				assert.Empty(t, resp.Header.Get("Content-Security-Policy"))
			}

			head, headBody := get(t, app, http.MethodHead, tc.path)
			assert.Equal(t, http.StatusOK, head.StatusCode)
			assert.Empty(t, headBody)
		})
	}
}

// TestPageIsSelfContained: everything the page loads is served by Register
// and comes from its own origin (no CDN), and the CSP forbids inline script
// and style, so the page must carry none.
func TestPageIsSelfContained(t *testing.T) {
	app := newApp(t)
	_, page := get(t, app, http.MethodGet, web.PagePath)

	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	require.NotEmpty(t, refs)
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		require.True(t, strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//"), "not same-origin: %s", ref)
		resp, _ := get(t, app, http.MethodGet, ref)
		assert.Equal(t, http.StatusOK, resp.StatusCode, ref)
	}
	assert.NotRegexp(t, `<script(?:\s[^>]*)?>\s*[^<\s]`, page, "inline script would be blocked by the CSP")

	// Every module the script imports, transitively, is served.
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		resp, body := get(t, app, http.MethodGet, p)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		for _, m := range regexp.MustCompile(`(?m)^(?:import|export)\s[^;]*?from\s+'(\./[^']+)'`).FindAllStringSubmatch(body, -1) {
			visit(p[:strings.LastIndex(p, "/")+1] + strings.TrimPrefix(m[1], "./"))
		}
	}
	visit(web.ScriptPath)
	assert.True(t, seen[web.ClientPath+"watch.js"], "the client's modules are reached: %v", seen)
	assert.NotContains(t, page, "<style", "inline style would be blocked by the CSP")
	assert.NotRegexp(t, `\sstyle="`, page, "style attributes would be blocked by the CSP")
	assert.NotRegexp(t, `\son[a-z]+="`, page, "inline handlers would be blocked by the CSP")
}

// TestPageHasTheTestHooks pins the element ids the browser test and the
// script rely on: a renamed id would otherwise surface only in Chromium.
func TestPageHasTheTestHooks(t *testing.T) {
	app := newApp(t)
	_, page := get(t, app, http.MethodGet, web.PagePath)
	_, script := get(t, app, http.MethodGet, web.ScriptPath)

	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\sid="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		require.False(t, ids[m[1]], "duplicate id %q", m[1])
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\$\('([a-z-]+)'\)`).FindAllStringSubmatch(script, -1) {
		assert.True(t, ids[m[1]], "app.js uses #%s, which the page lacks", m[1])
	}
	for _, id := range []string{"app", "user", "task-type", "input-steps", "input-delay", "transport-select", "start",
		"task-id", "task-status", "transport", "progress-bar", "drop", "cancel", "actions", "error", "result", "log-body"} {
		assert.True(t, ids[id], "page lacks #%s", id)
	}
	for _, opt := range []string{"demo.progress", "demo.fail", "demo.approval", "demo.sleep"} {
		assert.Contains(t, page, `<option value="`+opt+`"`)
	}
}

func TestOtherPathsAreNotServed(t *testing.T) {
	app := newApp(t)
	for _, path := range []string{"/demo/", "/demo/index.html", "/demo/web.go", "/index.html"} {
		resp, _ := get(t, app, http.MethodGet, path)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
	resp, _ := get(t, app, http.MethodPost, web.PagePath)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
