package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RedisAddrEnv names the variable that carries the address of the test
// redis-server; scripts/with-redis.sh (make test) starts one and sets it.
const RedisAddrEnv = "TASKBRIDGE_REDIS_ADDR"

// UnderCI reports whether the tests run under CI (CI=true, as .ci/run and
// hosted CI systems set it): there a test whose service is missing must
// fail, not skip.
func UnderCI() bool { return os.Getenv("CI") == "true" }

// Unavailable stops tb because a service it needs is missing: it skips
// with the reason, or, under CI, fails with it, so that a broken CI
// machine cannot pass by skipping.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if UnderCI() {
		tb.Fatalf("%s (CI=true: a missing service fails the test)", msg)
	}
	tb.Skip(msg)
}

// RedisAddr returns the test redis-server's address from
// $TASKBRIDGE_REDIS_ADDR; when it is unset the test skips (fails under
// CI) with a note on how to run it.
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(RedisAddrEnv)
	if addr == "" {
		Unavailable(tb, "set %s or run make test (scripts/with-redis.sh starts a redis-server)", RedisAddrEnv)
	}
	return addr
}

// RedisServerBinary returns the path of redis-server for tests that start
// a private server (to pause or kill it); when it is not installed the
// test skips (fails under CI).
func RedisServerBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Unavailable(tb, "redis-server is not installed; run make test (scripts/with-redis.sh installs it)")
	}
	return bin
}
