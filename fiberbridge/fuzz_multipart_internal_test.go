package fiberbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

// fuzzPart is one part of a seed body.
type fuzzPart struct {
	name, filename, contentType string
	content                     string
}

// fuzzMultipart builds a multipart/form-data body with a fixed boundary.
func fuzzMultipart(tb testing.TB, parts ...fuzzPart) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary("fuzzboundary"); err != nil {
		tb.Fatal(err)
	}
	for _, p := range parts {
		hdr := textproto.MIMEHeader{}
		disp := `form-data; name="` + p.name + `"`
		if p.filename != "" {
			disp += `; filename="` + p.filename + `"`
		}
		hdr.Set("Content-Disposition", disp)
		if p.contentType != "" {
			hdr.Set("Content-Type", p.contentType)
		}
		pw, err := w.CreatePart(hdr)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := pw.Write([]byte(p.content)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzParseCreateMultipart: any multipart create request (body and
// Content-Type) yields a command or a 4xx *bridgeerr.Error, never a panic
// and never a 500; an accepted command respects every limit: printable
// bounded identifiers, JSON object input and metadata, at most MaxUploads
// files, each a clean base name (no separator, NUL or control character) of
// an allowed type no larger than MaxUploadBytes, whose recorded size is its
// content's.
func FuzzParseCreateMultipart(f *testing.F) {
	const ct = "multipart/form-data; boundary=fuzzboundary"
	ok := []fuzzPart{{name: "clientRequestId", content: "r-1"}, {name: "taskType", content: "t"}}
	seeds := [][]fuzzPart{
		ok,
		append(ok[:2:2], fuzzPart{name: "input", content: `{"a":[1,{"b":null}]}`}, fuzzPart{name: "metadata", content: `{"k":"v"}`}),
		append(ok[:2:2], fuzzPart{name: "attachment", filename: "a.txt", contentType: "text/plain", content: "hello"}),
		append(ok[:2:2], fuzzPart{name: "attachments", filename: `..\..\x.png`, contentType: "image/png", content: "png"},
			fuzzPart{name: "attachment", filename: "../../etc/passwd", contentType: "text/plain; charset=utf-8", content: "x"}),
		append(ok[:2:2], fuzzPart{name: "attachment", filename: "big.txt", contentType: "text/plain", content: strings.Repeat("x", 65)}),
		append(ok[:2:2], fuzzPart{name: "attachment", filename: "a.exe", contentType: "application/x-msdownload", content: "MZ"}),
		append(ok[:2:2], fuzzPart{name: "attachment", filename: "*=UTF-8''a%00b.txt", contentType: "text/plain", content: "x"}),
		append(ok[:2:2], fuzzPart{name: "attachment", filename: "a.txt", contentType: "text/plain", content: "1"},
			fuzzPart{name: "attachment", filename: "b.txt", contentType: "text/plain", content: "2"},
			fuzzPart{name: "attachment", filename: "c.txt", contentType: "text/plain", content: "3"}),
		append(ok[:2:2], fuzzPart{name: "attachment", content: "not a file"}),
		append(ok[:2:2], fuzzPart{name: "input", content: `[1]`}),
		append(ok[:2:2], fuzzPart{name: "input", content: `{`}),
		append(ok[:2:2], fuzzPart{name: "extra", content: "1"}),
		{{name: "clientRequestId", content: "\xff"}, {name: "taskType", content: "t"}},
		{{name: "clientRequestId", content: "a"}, {name: "clientRequestId", content: "b"}},
		{{name: "clientRequestId", content: strings.Repeat("x", 300)}},
	}
	for _, s := range seeds {
		f.Add(ct, fuzzMultipart(f, s...))
	}
	f.Add(ct, []byte("--fuzzboundary\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"a\x00b\"\r\n\r\nx\r\n--fuzzboundary--\r\n"))
	f.Add(ct, []byte("--fuzzboundary\r\n\r\n"))
	f.Add(ct, []byte(""))
	f.Add("multipart/form-data", fuzzMultipart(f, ok...))
	f.Add("multipart/form-data; boundary=\"\"", []byte("--\r\n"))

	b := &Bridge{cfg: configDefault(Config{
		MaxBodyBytes: 4096, MaxUploadBytes: 64, MaxUploads: 2,
		AllowedUploadTypes: []string{"text/plain", "image/*"},
	})}
	for _, t := range b.cfg.AllowedUploadTypes {
		m, err := parseMediaRange(t)
		if err != nil {
			f.Fatal(err)
		}
		b.allowed = append(b.allowed, m)
	}
	app := fiber.New()
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		fctx := &fasthttp.RequestCtx{}
		fctx.Request.Header.SetMethod(fiber.MethodPost)
		fctx.Request.Header.SetContentType(contentType)
		fctx.Request.SetBody(body)
		c := app.AcquireCtx(fctx)
		defer func() {
			app.ReleaseCtx(c)
			fctx.Request.RemoveMultipartFormFiles()
		}()
		cmd, err := b.parseCreateMultipart(c)
		if err != nil {
			var be *bridgeerr.Error
			if !errors.As(err, &be) {
				t.Fatalf("not a *bridgeerr.Error: %T %v", err, err)
			}
			if s := be.HTTPStatus(); s < 400 || s >= 500 {
				t.Fatalf("status %d (%s) for a client's body: %v", s, be.Code, err)
			}
			return
		}
		for name, v := range map[string]string{"clientRequestId": cmd.ClientRequestID, "taskType": cmd.TaskType} {
			if len(v) > MaxFieldBytes || !printable(v) {
				t.Fatalf("accepted %s %q", name, v)
			}
		}
		for _, obj := range []json.RawMessage{cmd.Input, cmd.Metadata} {
			var m map[string]any
			if err := json.Unmarshal(obj, &m); err != nil || m == nil {
				t.Fatalf("accepted a non-object %q: %v", obj, err)
			}
		}
		if len(cmd.Attachments) > b.cfg.MaxUploads {
			t.Fatalf("accepted %d files, limit %d", len(cmd.Attachments), b.cfg.MaxUploads)
		}
		for _, a := range cmd.Attachments {
			if a.Filename == "" || a.Filename == "." || a.Filename == ".." || strings.ContainsAny(a.Filename, `/\`) ||
				!printable(a.Filename) || len(a.Filename) > 255 {
				t.Fatalf("accepted file name %q", a.Filename)
			}
			if int64(len(a.Content)) > b.cfg.MaxUploadBytes || a.Size != int64(len(a.Content)) {
				t.Fatalf("accepted %q: size %d, %d bytes, limit %d", a.Filename, a.Size, len(a.Content), b.cfg.MaxUploadBytes)
			}
			allowed := false
			for _, m := range b.allowed {
				allowed = allowed || m.matches(a.ContentType)
			}
			if !allowed {
				t.Fatalf("accepted content type %q", a.ContentType)
			}
		}
	})
}
