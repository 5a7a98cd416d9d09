package fiberbridge_test

import (
	"testing"

	"go.uber.org/goleak"
)

// fasthttpIgnores are fasthttp's own background goroutines, not the
// bridge's: the worker pool's cleaner sleeps up to 10 s between checks of
// its stop channel, and the server date updater runs for the process.
var fasthttpIgnores = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, fasthttpIgnores...)
}
