package e2etest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
)

// Response is a received HTTP answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request describes one HTTP request for Do.
type Request struct {
	Method string
	// URL is absolute ("http://host/path?query").
	URL string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// ContentType, when set, is the Content-Type header.
	ContentType string
	Header      http.Header
	Body        []byte
}

// Do sends r with client (a fresh client with a 30 s timeout when nil) and
// reads the whole answer.
func Do(client *http.Client, r Request) (Response, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequest(r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Response{}, err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// MustDo is Do failing tb on a transport error.
func MustDo(tb testing.TB, client *http.Client, r Request) Response {
	tb.Helper()
	resp, err := Do(client, r)
	require.NoError(tb, err, "%s %s", r.Method, r.URL)
	return resp
}

// RawExchange writes raw (a whole request, as bytes) on a new connection
// to addr and reads one response. The connection is closed afterwards.
// It exercises what net/http refuses to send (invalid paths, oversized or
// malformed headers).
func RawExchange(addr string, raw []byte, timeout time.Duration) (Response, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(raw); err != nil {
		return Response{}, err
	}
	return ReadResponse(conn)
}

// ReadResponse reads one HTTP/1.1 response and its whole body from conn.
func ReadResponse(conn net.Conn) (Response, error) {
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// EnvelopeError returns nil when r is the stable error envelope with
// status and code: a JSON Content-Type, a body that strictly decodes to
// bridgeerr.Envelope and passes the ErrorResponse schemas (see package
// conformance), with non-nil details and an RFC 3339 timestamp. A 500 must
// say only "internal error".
func EnvelopeError(r Response, status int, code bridgeerr.Code) (bridgeerr.Envelope, error) {
	var env bridgeerr.Envelope
	if r.Status != status {
		return env, fmt.Errorf("status %d, want %d: %s", r.Status, status, truncate(r.Body))
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return env, fmt.Errorf("content type %q: %s", ct, truncate(r.Body))
	}
	if err := conformance.Validate(conformance.ErrorResponse, r.Body); err != nil {
		return env, err
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return env, fmt.Errorf("not an envelope: %w: %s", err, truncate(r.Body))
	}
	switch {
	case env.Code != code:
		return env, fmt.Errorf("code %s, want %s: %s", env.Code, code, truncate(r.Body))
	case env.Details == nil:
		return env, fmt.Errorf("envelope without details: %s", truncate(r.Body))
	case status >= 500 && env.Message != "internal error" && code == bridgeerr.CodeInternal:
		return env, fmt.Errorf("a 500 envelope says more than %q: %s", "internal error", truncate(r.Body))
	}
	if _, err := time.Parse(time.RFC3339, env.Timestamp); err != nil {
		return env, fmt.Errorf("timestamp: %w", err)
	}
	return env, nil
}

// CheckEnvelope asserts EnvelopeError finds nothing wrong and returns the
// envelope.
func CheckEnvelope(tb testing.TB, r Response, status int, code bridgeerr.Code) bridgeerr.Envelope {
	tb.Helper()
	env, err := EnvelopeError(r, status, code)
	require.NoError(tb, err)
	return env
}

func truncate(b []byte) string {
	const limit = 500
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}
