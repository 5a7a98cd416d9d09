package orchestration

import "go.uber.org/zap/zapcore"

// debugLevel is checked with observe.Logger.Enabled before building
// per-poll log entries, so a disabled Debug level costs no allocation.
const debugLevel = zapcore.DebugLevel
