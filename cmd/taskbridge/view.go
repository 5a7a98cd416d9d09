package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/taskbridge/taskbridge-fiber/client"
	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// view shows a watched task.
type view interface {
	connected(t client.Transport)
	event(ev contracts.TaskEvent, p contracts.Payload)
	prompt(s string) // asks for a line of input
	note(s string)   // a remark of the CLI
	abort()          // the watch failed; leave the screen tidy
}

// lineView writes one line per event, for pipes and logs.
type lineView struct {
	out, errOut io.Writer
	taskID      string
}

func (v *lineView) connected(t client.Transport) {
	fmt.Fprintf(v.errOut, "taskbridge: watching %s over %s\n", v.taskID, t)
}

func (v *lineView) event(ev contracts.TaskEvent, p contracts.Payload) {
	fmt.Fprintln(v.out, strings.TrimSpace(string(ev.Type)+" "+describe(ev, p)))
}

func (v *lineView) prompt(s string) { fmt.Fprint(v.out, s) }
func (v *lineView) note(s string)   { fmt.Fprintf(v.errOut, "taskbridge: %s\n", s) }
func (v *lineView) abort()          {}

// describe is an event's payload in a few words.
func describe(ev contracts.TaskEvent, p contracts.Payload) string {
	switch p := p.(type) {
	case contracts.ProgressPayload:
		return strings.TrimSpace(fmt.Sprintf("%.0f%% %s", p.Progress, stageText(p.Stage, p.Message)))
	case contracts.MessagePayload:
		return fmt.Sprintf("[%s] %s", p.Level, p.Message)
	case contracts.SuspendedPayload:
		return fmt.Sprintf("%s: actions %s (suspendId %s)", p.ReasonCode, strings.Join(p.AllowedActions, ", "), p.SuspendID)
	case contracts.ActionAcceptedPayload:
		return p.ActionType
	case contracts.CompletedPayload:
		return string(p.Result)
	case contracts.FailedPayload:
		s := p.Code + ": " + p.Message
		if p.Retryable {
			s += " (retryable)"
		}
		return s
	case contracts.CancelledPayload:
		return strings.Trim(p.Reason+": "+p.Message, ": ")
	case contracts.StartedPayload:
		return p.Message
	}
	return string(ev.Payload)
}

func stageText(stage, message string) string {
	switch {
	case stage != "" && message != "":
		return stage + ": " + message
	case stage != "":
		return stage
	}
	return message
}

// barView draws a progress bar on one terminal line, redrawn in place;
// messages, suspensions and the end are printed above it.
type barView struct {
	out       io.Writer
	width     int
	taskID    string
	pct       float64
	stage     string
	transport client.Transport
	status    string
	drawn     bool // the bar is on the current line
}

const barCells = 30

func newBarView(out io.Writer, width int, taskID string) *barView {
	if width <= 0 {
		width = 80
	}
	return &barView{out: out, width: width, taskID: taskID, status: "waiting"}
}

func (v *barView) connected(t client.Transport) {
	v.transport = t
	v.redraw()
}

func (v *barView) event(ev contracts.TaskEvent, p contracts.Payload) {
	switch p := p.(type) {
	case contracts.StartedPayload:
		v.status = "running"
		if p.Message != "" {
			v.stage = p.Message
		}
	case contracts.ProgressPayload:
		v.status, v.pct, v.stage = "running", p.Progress, stageText(p.Stage, p.Message)
	case contracts.MessagePayload:
		v.line(fmt.Sprintf("  [%s] %s", p.Level, p.Message))
	case contracts.SuspendedPayload:
		v.status = "suspended"
		v.line(fmt.Sprintf("Suspended (%s): allowed actions %s", p.ReasonCode, strings.Join(p.AllowedActions, ", ")))
	case contracts.ActionAcceptedPayload:
		v.status = "running"
		v.line("Action accepted: " + p.ActionType)
	case contracts.CompletedPayload:
		v.status, v.pct = "completed", 100
		v.redraw()
		v.finish("Completed: " + string(p.Result))
		return
	case contracts.FailedPayload:
		v.status = "failed"
		v.redraw()
		v.finish("Failed: " + describe(ev, p))
		return
	case contracts.CancelledPayload:
		v.status = "cancelled"
		v.redraw()
		v.finish("Cancelled: " + describe(ev, p))
		return
	}
	v.redraw()
}

func (v *barView) prompt(s string) {
	v.clear()
	fmt.Fprint(v.out, s)
}

func (v *barView) note(s string) {
	v.line("  " + s)
	v.redraw()
}

func (v *barView) abort() {
	if v.drawn {
		fmt.Fprintln(v.out)
		v.drawn = false
	}
}

// line prints s on its own line above the bar.
func (v *barView) line(s string) {
	v.clear()
	fmt.Fprintln(v.out, v.fit(s))
}

// finish ends the bar's line and prints the outcome below it.
func (v *barView) finish(s string) {
	fmt.Fprintln(v.out)
	v.drawn = false
	fmt.Fprintln(v.out, v.fit(s))
}

func (v *barView) clear() {
	if v.drawn {
		fmt.Fprint(v.out, "\r\x1b[2K")
		v.drawn = false
	}
}

func (v *barView) redraw() {
	filled := int(v.pct / 100 * barCells)
	filled = min(max(filled, 0), barCells)
	s := fmt.Sprintf("[%s%s] %3.0f%% %-9s %s", strings.Repeat("#", filled), strings.Repeat("-", barCells-filled), v.pct, v.status, v.stage)
	if v.transport != "" {
		s += "  (" + string(v.transport) + ")"
	}
	fmt.Fprint(v.out, "\r\x1b[2K"+v.fit(s))
	v.drawn = true
}

// fit cuts s to the terminal's width (one column spare).
func (v *barView) fit(s string) string {
	max := v.width - 1
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}
