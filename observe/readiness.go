package observe

import "context"

// ReadinessProbe answers the /ready route: whether the instance can serve,
// and per-dependency details for the response body. Implementations must
// honour ctx and be safe for concurrent use.
type ReadinessProbe interface {
	CheckReadiness(ctx context.Context) (ready bool, details map[string]any)
}

// AlwaysReady is the default ReadinessProbe: ready, with no details.
type AlwaysReady struct{}

// CheckReadiness implements ReadinessProbe.
func (AlwaysReady) CheckReadiness(context.Context) (bool, map[string]any) {
	return true, map[string]any{}
}
