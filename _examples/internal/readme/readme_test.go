package readme

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// snippet says how one Go block of README.md compiles: as declarations
// (decl) or as the body of a func returning error, after prelude (the names
// the block takes from the text around it) and before postlude (uses of
// names the block only declares). A block with a module compiles in that
// module of the repository instead of the root one.
type snippet struct {
	decl              bool
	prelude, postlude string
	module            string
}

// imports a block may use, by the name it uses; a file imports those whose
// name it mentions outside comments. The Temporal block's client is the SDK's.
var imports = map[string]string{
	"context":       "context",
	"json":          "encoding/json",
	"fmt":           "fmt",
	"time":          "time",
	"fiber":         "github.com/gofiber/fiber/v2",
	"prometheus":    "github.com/prometheus/client_golang/prometheus",
	"redis":         "github.com/redis/go-redis/v9",
	"zap":           "go.uber.org/zap",
	"client":        "github.com/taskbridge/taskbridge-fiber/client",
	"contracts":     "github.com/taskbridge/taskbridge-fiber/contracts",
	"bridgeerr":     "github.com/taskbridge/taskbridge-fiber/errors",
	"fiberbridge":   "github.com/taskbridge/taskbridge-fiber/fiberbridge",
	"observe":       "github.com/taskbridge/taskbridge-fiber/observe",
	"prom":          "github.com/taskbridge/taskbridge-fiber/observe/prom",
	"orchestration": "github.com/taskbridge/taskbridge-fiber/orchestration",
	"memstore":      "github.com/taskbridge/taskbridge-fiber/stores/memstore",
	"redisstore":    "github.com/taskbridge/taskbridge-fiber/stores/redisstore",
	"workflow":      "go.temporal.io/sdk/workflow",
	"tbtemporal":    "github.com/taskbridge/taskbridge-fiber/adapters/temporal",
}

// snippets are README.md's Go blocks in order.
var snippets = []snippet{
	{ // Use it in your app
		prelude: `zapLogger := zap.NewNop()
var myApproverPolicy contracts.ActionPolicy
var myErrorHandler fiber.ErrorHandler
myAuth := func(c *fiber.Ctx) error { return c.Next() }
currentUser := func(c *fiber.Ctx) string { return "alice" }`,
		postlude: `_ = err`},
	{ // ... with an AuthResolver instead of SetAuth
		prelude: `var cfg fiberbridge.Config
var bridge *fiberbridge.Bridge
app := fiber.New()
verifyBearer := func(string) (string, error) { return "alice", nil }`},
	{decl: true}, // a task handler
	{ // the Go client
		prelude: `var token string
ctx := context.Background()`},
	{ // Observability: logger and Prometheus
		prelude: `var cfg fiberbridge.Config
zapLogger := zap.NewNop()
registry := prometheus.NewRegistry()
app := fiber.New()`},
	{ // readiness probes
		prelude: `var cfg fiberbridge.Config
var executor *orchestration.Executor
var client *redis.Client`},
	{ // several instances on Redis
		prelude:  `addr := "127.0.0.1:6379"`,
		postlude: `_, _ = stores, err`},
	{ // the cancel relay
		prelude: `var client *redis.Client
var opts redisstore.Options
var stores contracts.Stores
var exec *orchestration.Executor
var cfg fiberbridge.Config
ctx := context.Background()`,
		postlude: `_ = err`},
	{ // durable execution on Temporal, in the Temporal example's module
		module: "_examples/temporal",
		prelude: `var log *zap.Logger
var stores contracts.Stores
var auth func(*fiber.Ctx) (contracts.AuthContext, error)
var render func(ctx context.Context, in json.RawMessage) error`,
		postlude: `_, _ = bridge, err`},
}

var (
	goBlock = regexp.MustCompile("(?s)\n```go\n(.*?)\n```")
	comment = regexp.MustCompile(`//[^"\n]*`)
)

// TestREADMESnippetsCompile: every Go block of README.md compiles (go vet)
// against the current API, so a snippet cannot drift from it unnoticed.
func TestREADMESnippetsCompile(t *testing.T) {
	repo, err := filepath.Abs("../../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	require.NoError(t, err)
	blocks := goBlock.FindAllStringSubmatch(string(readme), -1)
	require.Len(t, blocks, len(snippets), "README.md's Go blocks and this test's snippets must match one to one")

	files := map[string][]string{} // module directory -> sources
	for i, b := range blocks {
		s := snippets[i]
		body := b[1] + "\n"
		if !s.decl {
			body = fmt.Sprintf("func block%d() error {\n%s\n%s\n%s\nreturn nil\n}\n", i, s.prelude, b[1], s.postlude)
		}
		code := comment.ReplaceAllString(body, "")
		var used []string
		for name, path := range imports {
			if name == "client" && s.module == "_examples/temporal" {
				path = "go.temporal.io/sdk/client"
			}
			if regexp.MustCompile(`\b` + name + `\.`).MatchString(code) {
				used = append(used, fmt.Sprintf("\t%s %q", name, path))
			}
		}
		files[s.module] = append(files[s.module], "package main\n\nimport (\n"+strings.Join(used, "\n")+"\n)\n\n"+body)
	}
	for module, srcs := range files {
		// a directory starting with "_" inside the module: ./... skips it
		dir, err := os.MkdirTemp(filepath.Join(repo, module), "_readme_snippets_")
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		srcs = append(srcs, "package main\n\nfunc main() {}\n")
		for i, src := range srcs {
			require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("block%d.go", i)), []byte(src), 0o644))
		}
		cmd := exec.Command("go", "vet", "./"+filepath.Base(dir))
		cmd.Dir = filepath.Join(repo, module)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("README.md's Go blocks do not compile in module %q: %v\n%s", "./"+module, err, out)
		}
	}
}
