package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client calls a bench server's control endpoint. It is safe for
// concurrent use.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the control endpoint at addr (host:port).
func NewClient(addr string) *Client {
	return &Client{base: "http://" + addr, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Stats reads the server's statistics.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	return st, c.do(ctx, http.MethodGet, "/stats", nil, &st)
}

// CreateTasks creates n tasks and returns their ids.
func (c *Client) CreateTasks(ctx context.Context, n int) ([]string, error) {
	var out TasksResponse
	if err := c.do(ctx, http.MethodPost, "/tasks", TasksRequest{Count: n}, &out); err != nil {
		return nil, err
	}
	if len(out.TaskIDs) != n {
		return nil, fmt.Errorf("control: asked for %d tasks, got %d", n, len(out.TaskIDs))
	}
	return out.TaskIDs, nil
}

// Emit runs an emission and waits for it.
func (c *Client) Emit(ctx context.Context, req EmitRequest) (EmitResult, error) {
	var out EmitResult
	return out, c.do(ctx, http.MethodPost, "/emit", req, &out)
}

// GC asks the server to collect garbage and return memory to the OS, so
// that RSS readings reflect live memory.
func (c *Client) GC(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/gc", nil, nil)
}

// WaitReady polls /stats until it answers or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		if _, err := c.Stats(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("control %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("control %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
