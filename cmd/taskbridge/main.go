package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := term.IsTerminal(int(os.Stdout.Fd()))
	width := 0
	if tty {
		if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
			width = w
		}
	}
	code := run(ctx, os.Args[1:], env{
		getenv: os.Getenv,
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		tty:    tty,
		inTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		width:  width,
	})
	stop()
	os.Exit(code)
}
