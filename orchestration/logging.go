package orchestration

import "go.uber.org/zap/zapcore"

// Levels checked with observe.Logger.Enabled before building what a log
// line alone needs (a Details map, an id's text), so that a disabled level
// costs no allocation: debugLevel for per-poll lines, errorLevel for the
// details of an action's lines (Info and above: when even Error is off,
// none of them is written).
const (
	debugLevel = zapcore.DebugLevel
	errorLevel = zapcore.ErrorLevel
)
