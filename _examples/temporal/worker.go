package main

import (
	"context"

	"go.uber.org/zap"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
)

// runWorker runs the demo task types until ctx ends, then stops the
// worker: steps running here see their context cancelled, and Temporal
// runs them again on another worker.
func runWorker(ctx context.Context, opts options, log *zap.Logger) error {
	cs, err := connect(ctx, opts, log)
	if err != nil {
		return err
	}
	defer cs.close()
	w, err := tbtemporal.NewWorker(cs.temporal, tbtemporal.WorkerOptions{
		Stores: cs.stores, TaskQueue: opts.queue, Logger: log,
	})
	if err != nil {
		return err
	}
	register(w)
	if err := w.Start(); err != nil {
		return err
	}
	log.Info("temporal example worker started", zap.String("queue", opts.queue), zap.Strings("taskTypes", w.TaskTypes()))
	<-ctx.Done()
	log.Info("shutting down")
	w.Stop()
	return nil
}
