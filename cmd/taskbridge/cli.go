package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/taskbridge/taskbridge-fiber/client"
	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Exit codes.
const (
	exitCompleted   = 0   // the task completed (or the command succeeded)
	exitError       = 1   // the command failed: unreachable, refused, not found, ...
	exitUsage       = 2   // bad command line
	exitFailed      = 3   // the task ended TASK_FAILED
	exitCancelled   = 4   // the task ended TASK_CANCELLED
	exitInterrupted = 130 // interrupted (Ctrl-C) before the task ended
)

// Environment variables of the common flags.
const (
	envURL        = "TASKBRIDGE_URL"
	envToken      = "TASKBRIDGE_TOKEN"
	envTransports = "TASKBRIDGE_TRANSPORTS"
	defaultURL    = "http://127.0.0.1:8080"
)

// env is what run needs from the process.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	tty    bool // stdout is a terminal: draw the progress bar
	inTTY  bool // stdin is a terminal: prompts can be answered
	width  int  // terminal columns, 0 when unknown
}

const usage = `usage: taskbridge <command> [flags] [args]

commands:
  watch <taskId>     follow a task: a progress bar in a terminal, one line
                     per event otherwise; exit code by the task's end
  create -type T     create a task and print its id (-watch to follow it)
  approve <taskId>   approve the task's open suspension (-action to choose)
  reject <taskId>    reject it
  cancel <taskId>    ask the server to cancel the task

common flags (every command):
  -url URL           server base URL (env TASKBRIDGE_URL, default http://127.0.0.1:8080)
  -token TOKEN       bearer token (env TASKBRIDGE_TOKEN)
  -transports LIST   watch transports in order, e.g. ws,sse,poll (env TASKBRIDGE_TRANSPORTS)

exit codes: 0 completed, 1 error, 2 usage, 3 task failed, 4 task cancelled, 130 interrupted
run "taskbridge <command> -h" for a command's flags
`

// run runs one command line and returns the process's exit code.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "watch":
		return cmdWatch(ctx, rest, e)
	case "create":
		return cmdCreate(ctx, rest, e)
	case "approve", "reject":
		return cmdAct(ctx, cmd, rest, e)
	case "cancel":
		return cmdCancel(ctx, rest, e)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitCompleted
	}
	fmt.Fprintf(e.stderr, "taskbridge: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// common are the flags of every command.
type common struct {
	url        string
	token      string
	transports string
}

func (c *common) register(fs *flag.FlagSet, e env) {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	fs.StringVar(&c.url, "url", or(e.getenv(envURL), defaultURL), "server base URL (env "+envURL+")")
	fs.StringVar(&c.token, "token", e.getenv(envToken), "bearer token (env "+envToken+")")
	fs.StringVar(&c.transports, "transports", e.getenv(envTransports), "watch transports in order, e.g. ws,sse,poll (env "+envTransports+")")
}

// client builds the client; opts are added to the common ones.
func (c *common) client(opts ...client.Option) (*client.Client, error) {
	if c.token != "" {
		opts = append(opts, client.WithBearerToken(c.token))
	}
	if c.transports != "" {
		var ts []client.Transport
		for _, t := range strings.Split(c.transports, ",") {
			ts = append(ts, client.Transport(strings.TrimSpace(t)))
		}
		opts = append(opts, client.WithTransports(ts...))
	}
	return client.New(c.url, opts...)
}

// newFlagSet returns a flag set whose errors and help go to e.stderr.
func newFlagSet(name, args string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: taskbridge %s [flags] %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags anywhere among the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// usageError reports a bad command line.
func usageError(e env, fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(e.stderr, "taskbridge %s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return exitUsage
}

// failure reports err and returns the exit code for it.
func failure(ctx context.Context, e env, err error) int {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		fmt.Fprintln(e.stderr, "taskbridge: interrupted")
		return exitInterrupted
	}
	fmt.Fprintf(e.stderr, "%v\n", err)
	return exitError
}

func cmdWatch(ctx context.Context, args []string, e env) int {
	var (
		c        common
		from     string
		plain    bool
		noPrompt bool
	)
	fs := newFlagSet("watch", "<taskId>", e)
	c.register(fs, e)
	fs.StringVar(&from, "from", "", "resume after this event id")
	fs.BoolVar(&plain, "plain", false, "one line per event even in a terminal")
	fs.BoolVar(&noPrompt, "no-prompt", false, "do not ask for an action when the task suspends")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		return usageError(e, fs, "want one task id")
	}
	cursor, err := contracts.ParseCursor(from)
	if err != nil {
		return usageError(e, fs, "-from: %v", err)
	}
	return watch(ctx, e, &c, pos[0], cursor, e.tty && !plain, e.inTTY && !noPrompt)
}

// watch follows a task and returns the exit code of its end.
func watch(ctx context.Context, e env, c *common, taskID string, from contracts.EventID, bar, prompt bool) int {
	var v view
	if bar {
		v = newBarView(e.stdout, e.width, taskID)
	} else {
		v = &lineView{out: e.stdout, errOut: e.stderr, taskID: taskID}
	}
	cl, err := c.client(client.WithOnConnect(func(_ string, t client.Transport) { v.connected(t) }))
	if err != nil {
		return failure(ctx, e, err)
	}
	defer cl.CloseIdleConnections()
	var in *lineReader
	if prompt {
		in = newLineReader(e.stdin)
	}
	code := exitCompleted
	ended := false
	for ev, err := range cl.Watch(ctx, taskID, from) {
		if err != nil {
			v.abort()
			return failure(ctx, e, err)
		}
		p, err := contracts.DecodePayload(&ev)
		if err != nil {
			v.abort()
			return failure(ctx, e, err)
		}
		v.event(ev, p)
		switch p := p.(type) {
		case contracts.SuspendedPayload:
			if in != nil {
				if code, ok := askAction(ctx, e, cl, v, in, taskID, p); !ok {
					return code
				}
			}
		case contracts.FailedPayload:
			code, ended = exitFailed, true
		case contracts.CancelledPayload:
			code, ended = exitCancelled, true
		case contracts.CompletedPayload:
			ended = true
		}
	}
	if !ended {
		v.note("the task ended at or before the cursor")
	}
	return code
}

// askAction prompts for one of the suspension's actions and submits it.
// ok false means the watch must stop with code.
func askAction(ctx context.Context, e env, cl *client.Client, v view, in *lineReader, taskID string, p contracts.SuspendedPayload) (code int, ok bool) {
	for {
		v.prompt(fmt.Sprintf("Action (%s, empty to skip): ", strings.Join(p.AllowedActions, "/")))
		line, err := in.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return failure(ctx, e, ctx.Err()), false
			}
			v.note("no input: waiting for the task")
			return 0, true
		}
		action := strings.TrimSpace(line)
		if action == "" {
			v.note("skipped: waiting for the task")
			return 0, true
		}
		if !contains(p.AllowedActions, action) {
			v.note(fmt.Sprintf("%q is not one of %s", action, strings.Join(p.AllowedActions, ", ")))
			continue
		}
		res, err := cl.Act(ctx, taskID, client.Action{SuspendID: p.SuspendID, ActionType: action})
		if err != nil {
			return failure(ctx, e, err), false
		}
		v.note(fmt.Sprintf("%s: %s", action, res.Status))
		return 0, true
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func cmdCreate(ctx context.Context, args []string, e env) int {
	var (
		c                 common
		taskType, input   string
		metadata, request string
		attach            stringList
		follow, asJSON    bool
		plain             bool
	)
	fs := newFlagSet("create", "", e)
	c.register(fs, e)
	fs.StringVar(&taskType, "type", "", "task type (required)")
	fs.StringVar(&input, "input", "{}", "input JSON object, or @file to read it from a file")
	fs.StringVar(&metadata, "metadata", "", "metadata JSON object, or @file")
	fs.StringVar(&request, "request-id", "", "clientRequestId (idempotency key); default: random")
	fs.Var(&attach, "attach", "file to attach (repeatable); sends multipart/form-data")
	fs.BoolVar(&follow, "watch", false, "watch the task after creating it")
	fs.BoolVar(&asJSON, "json", false, "print the create result as JSON instead of the task id")
	fs.BoolVar(&plain, "plain", false, "with -watch: one line per event even in a terminal")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 0 {
		return usageError(e, fs, "unexpected argument %q", pos[0])
	}
	if taskType == "" {
		return usageError(e, fs, "-type is required")
	}
	req := client.CreateRequest{ClientRequestID: request, TaskType: taskType}
	if req.Input, err = jsonArg(input); err != nil {
		return usageError(e, fs, "-input: %v", err)
	}
	if metadata != "" {
		if req.Metadata, err = jsonArg(metadata); err != nil {
			return usageError(e, fs, "-metadata: %v", err)
		}
	}
	for _, path := range attach {
		data, err := os.ReadFile(path)
		if err != nil {
			return usageError(e, fs, "-attach: %v", err)
		}
		req.Attachments = append(req.Attachments, client.Attachment{
			Filename: filepath.Base(path), ContentType: mime.TypeByExtension(filepath.Ext(path)), Data: data})
	}
	cl, err := c.client()
	if err != nil {
		return failure(ctx, e, err)
	}
	defer cl.CloseIdleConnections()
	res, err := cl.Create(ctx, req)
	if err != nil {
		return failure(ctx, e, err)
	}
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(e.stdout, string(b))
	} else {
		fmt.Fprintln(e.stdout, res.TaskID)
	}
	if res.Deduplicated {
		fmt.Fprintf(e.stderr, "taskbridge: clientRequestId %s already made this task\n", res.ClientRequestID)
	}
	if !follow {
		return exitCompleted
	}
	return watch(ctx, e, &c, res.TaskID, contracts.EventID{}, e.tty && !plain, e.inTTY)
}

// jsonArg reads a JSON argument: literal JSON, or @file.
func jsonArg(s string) (json.RawMessage, error) {
	if name, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		s = string(b)
	}
	if !json.Valid([]byte(s)) {
		return nil, errors.New("not valid JSON")
	}
	return json.RawMessage(s), nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdAct(ctx context.Context, name string, args []string, e env) int {
	var (
		c                   common
		action, suspendID   string
		payload, clientID   string
		defaultAction       = name
		acceptedOrDuplicate = map[contracts.ActionStatus]bool{
			contracts.ActionStatusAccepted: true, contracts.ActionStatusDeduplicated: true}
	)
	fs := newFlagSet(name, "<taskId>", e)
	c.register(fs, e)
	fs.StringVar(&action, "action", defaultAction, "the action type (one of the suspension's allowed actions)")
	fs.StringVar(&suspendID, "suspend-id", "", "the suspension to answer; default: the task's open suspension")
	fs.StringVar(&payload, "payload", "", "action payload JSON object, or @file")
	fs.StringVar(&clientID, "action-id", "", "clientActionId (idempotency key); default: random")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		return usageError(e, fs, "want one task id")
	}
	a := client.Action{SuspendID: suspendID, ActionType: action, ClientActionID: clientID}
	if payload != "" {
		if a.Payload, err = jsonArg(payload); err != nil {
			return usageError(e, fs, "-payload: %v", err)
		}
	}
	cl, err := c.client()
	if err != nil {
		return failure(ctx, e, err)
	}
	defer cl.CloseIdleConnections()
	if a.SuspendID == "" {
		open, err := cl.OpenSuspension(ctx, pos[0])
		if err != nil {
			return failure(ctx, e, err)
		}
		if open == nil {
			fmt.Fprintf(e.stderr, "taskbridge: task %s has no open suspension\n", pos[0])
			return exitError
		}
		a.SuspendID = open.SuspendID
	}
	res, err := cl.Act(ctx, pos[0], a)
	if err != nil {
		return failure(ctx, e, err)
	}
	fmt.Fprintln(e.stdout, res.Status)
	if !acceptedOrDuplicate[res.Status] {
		return exitError
	}
	return exitCompleted
}

func cmdCancel(ctx context.Context, args []string, e env) int {
	var (
		c      common
		reason string
	)
	fs := newFlagSet("cancel", "<taskId>", e)
	c.register(fs, e)
	fs.StringVar(&reason, "reason", "", "reason recorded on the TASK_CANCELLED event")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		return usageError(e, fs, "want one task id")
	}
	cl, err := c.client()
	if err != nil {
		return failure(ctx, e, err)
	}
	defer cl.CloseIdleConnections()
	res, err := cl.Cancel(ctx, pos[0], reason)
	if err != nil {
		return failure(ctx, e, err)
	}
	fmt.Fprintln(e.stdout, res.Status)
	return exitCompleted
}

// lineReader delivers stdin's lines; its goroutine reads ahead (a read
// from a terminal cannot be interrupted) and ends with the input.
type lineReader struct {
	lines chan string
	err   chan error
}

func newLineReader(r io.Reader) *lineReader {
	l := &lineReader{lines: make(chan string), err: make(chan error, 1)}
	// Owner: the process. The goroutine ends at the end of the input;
	// blocked in a terminal read it ends with the process.
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			l.lines <- s.Text()
		}
		err := s.Err()
		if err == nil {
			err = io.EOF
		}
		l.err <- err
	}()
	return l
}

// next returns the next line, or an error at the end of the input or of ctx.
func (l *lineReader) next(ctx context.Context) (string, error) {
	select {
	case s := <-l.lines:
		return s, nil
	case err := <-l.err:
		l.err <- err // stays at the end
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
