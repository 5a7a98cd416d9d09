package fiberbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// Multipart field names of a create request.
const (
	formClientRequestID = "clientRequestId"
	formTaskType        = "taskType"
	formInput           = "input"
	formMetadata        = "metadata"
	formAttachment      = "attachment"
	formAttachments     = "attachments"
)

// CreateTaskHandler returns the handler of POST /api/v1/tasks: it parses an
// application/json or multipart/form-data create request, applies the upload
// limits and policy and the CreatePreprocessor, and calls the creation
// service. It answers 201 with the TaskCreated body for a new task and 200
// for a deduplicated one.
//
// JSON: {clientRequestId, taskType, input?, metadata?}, no other fields.
// Multipart: clientRequestId, taskType, and input and metadata as JSON
// strings; files in "attachment" and/or "attachments"; no other fields. File
// names are reduced to their base name.
func (b *Bridge) CreateTaskHandler() fiber.Handler {
	return b.handler(b.createTask)
}

func (b *Bridge) createTask(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	if err := checkEncoding(c); err != nil {
		return err
	}
	var (
		cmd contracts.CreateTaskCommand
		err error
	)
	mt := mediaType(c.Get(fiber.HeaderContentType))
	switch {
	case isJSONType(mt):
		var body []byte
		if body, err = ReadBody(c, b.cfg.MaxBodyBytes); err != nil {
			return err
		}
		cmd, err = parseCreateJSON(body)
	case mt == fiber.MIMEMultipartForm:
		cmd, err = b.parseCreateMultipart(c)
	default:
		return unsupportedMediaType(mt, fiber.MIMEApplicationJSON, fiber.MIMEMultipartForm)
	}
	if err != nil {
		return err
	}
	cmd.Auth = auth
	if err := b.checkUploadPolicy(c, auth, cmd.Attachments); err != nil {
		return err
	}
	if b.cfg.CreatePreprocessor != nil {
		// A copy whose address the preprocessor gets: only this branch
		// moves a command to the heap.
		shaped := cmd
		if err := b.cfg.CreatePreprocessor(c, &shaped); err != nil {
			return err
		}
		cmd = shaped
	}
	res, err := s.Creation.Create(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	outcome := "created"
	if res.Deduplicated {
		status, outcome = http.StatusOK, "deduplicated"
	}
	b.log.Info("http.task.create", observe.Entry{
		TaskID: res.TaskID, ClientRequestID: res.ClientRequestID, UserID: auth.Subject, Outcome: outcome,
	})
	return writeCreated(c, status, &res)
}

// checkEncoding rejects compressed request bodies: the bridge reads bodies
// as sent, so a decompression bomb never expands in memory.
func checkEncoding(c *fiber.Ctx) error {
	ce := strings.TrimSpace(c.Get(fiber.HeaderContentEncoding))
	if ce == "" || strings.EqualFold(ce, "identity") {
		return nil
	}
	return bridgeerr.New(bridgeerr.CodeInvalidRequest, "unsupported content encoding").
		WithDetails(map[string]any{"contentEncoding": ce}).
		WithStatus(fiber.StatusUnsupportedMediaType)
}

// multipartLimit bounds a whole multipart body: every allowed file at its
// largest plus the text fields. 0 means only the app's BodyLimit applies.
func (b *Bridge) multipartLimit() int {
	if b.cfg.MaxUploadBytes < 0 || b.cfg.MaxBodyBytes < 0 {
		return 0
	}
	files := max(b.cfg.MaxUploads, 0)
	limit := int64(files)*b.cfg.MaxUploadBytes + int64(b.cfg.MaxBodyBytes)
	const maxInt = int64(^uint(0) >> 1)
	if limit > maxInt {
		return 0
	}
	return int(limit)
}

// parseCreateMultipart parses a multipart create request.
func (b *Bridge) parseCreateMultipart(c *fiber.Ctx) (contracts.CreateTaskCommand, error) {
	limit := b.multipartLimit()
	if req := c.Request(); limit > 0 {
		// A streamed body (fiber.Config.StreamRequestBody) is refused by
		// its declared length before it is read; fasthttp's multipart
		// reader below enforces the limit on the bytes as they arrive and
		// keeps files over 8 KiB on disk.
		size := req.Header.ContentLength()
		if !req.IsBodyStream() {
			size = len(req.Body())
		}
		if size > limit {
			return contracts.CreateTaskCommand{}, bodyTooLarge(int64(limit))
		}
	}
	form, err := c.Context().MultipartFormWithLimit(limit)
	if err != nil {
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			return contracts.CreateTaskCommand{}, bodyTooLarge(int64(limit))
		case isTimeout(err):
			// A streamed body cut by the app's ReadTimeout is late, not
			// malformed: the same 408 as a JSON body.
			return contracts.CreateTaskCommand{}, bodyTimeout()
		}
		return contracts.CreateTaskCommand{}, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "malformed multipart body").
			WithDetails(map[string]any{"reason": "not a valid multipart/form-data body"})
	}
	var text [4]string // clientRequestId, taskType, input, metadata
	for name, values := range form.Value {
		i := -1
		switch name {
		case formClientRequestID:
			i = 0
		case formTaskType:
			i = 1
		case formInput:
			i = 2
		case formMetadata:
			i = 3
		case formAttachment, formAttachments:
			return contracts.CreateTaskCommand{}, bridgeerr.New(bridgeerr.CodeUploadValidation,
				"attachments must be files with a file name").WithDetails(map[string]any{"field": name})
		default:
			return contracts.CreateTaskCommand{}, invalidRequest("unknown field "+fmt.Sprintf("%q", name),
				map[string]any{"field": name, "reason": "unknown field"})
		}
		if len(values) != 1 {
			return contracts.CreateTaskCommand{}, invalidRequest(name+" must be given once",
				map[string]any{"field": name, "reason": "repeated field"})
		}
		if !utf8.ValidString(values[0]) {
			return contracts.CreateTaskCommand{}, invalidRequest(name+" is not valid UTF-8",
				map[string]any{"field": name, "reason": "invalid UTF-8"})
		}
		text[i] = strings.Clone(values[0])
	}
	for name := range form.File {
		if name != formAttachment && name != formAttachments {
			return contracts.CreateTaskCommand{}, invalidRequest("unknown field "+fmt.Sprintf("%q", name),
				map[string]any{"field": name, "reason": "unknown field"})
		}
	}
	// A stable order (attachment before attachments, each in request order)
	// keeps idempotency fingerprints independent of map iteration.
	files := append(append([]*multipart.FileHeader(nil), form.File[formAttachment]...), form.File[formAttachments]...)
	// The JSON fields are held to the rules of a JSON body (one value,
	// no duplicate names) before createCommand canonicalises them.
	for i, name := range [...]string{2: formInput, 3: formMetadata} {
		if i < 2 || strings.TrimSpace(text[i]) == "" {
			continue
		}
		var raw json.RawMessage
		if err := strictjson.Unmarshal([]byte(text[i]), &raw); err != nil {
			var se *strictjson.Error
			if errors.As(err, &se) {
				se.Field = strings.TrimSuffix(name+"."+se.Field, ".")
			}
			be := jsonError(err)
			if _, ok := be.Details["field"]; !ok {
				be.Details["field"] = name
			}
			return contracts.CreateTaskCommand{}, be
		}
	}
	cmd, err := createCommand(text[0], text[1], jsonText(text[2]), jsonText(text[3]))
	if err != nil {
		return contracts.CreateTaskCommand{}, err
	}
	cmd.Attachments, err = b.readAttachments(files)
	if err != nil {
		return contracts.CreateTaskCommand{}, err
	}
	return cmd, nil
}

// jsonText turns an optional multipart JSON field into raw JSON ("" is
// absent).
func jsonText(s string) json.RawMessage {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return json.RawMessage(s)
}

// readAttachments checks and reads the uploaded files.
func (b *Bridge) readAttachments(files []*multipart.FileHeader) ([]contracts.Attachment, error) {
	if len(files) == 0 {
		return nil, nil
	}
	maxFiles := max(b.cfg.MaxUploads, 0)
	if len(files) > maxFiles {
		return nil, bridgeerr.New(bridgeerr.CodeUploadValidation, fmt.Sprintf("at most %d files may be uploaded", maxFiles)).
			WithDetails(map[string]any{"maxUploads": maxFiles, "files": len(files)})
	}
	out := make([]contracts.Attachment, 0, len(files))
	for _, fh := range files {
		a, err := b.readAttachment(fh)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (b *Bridge) readAttachment(fh *multipart.FileHeader) (contracts.Attachment, error) {
	name, err := cleanFilename(fh.Filename)
	if err != nil {
		return contracts.Attachment{}, err
	}
	ct, err := b.uploadType(fh.Header.Get(fiber.HeaderContentType))
	if err != nil {
		return contracts.Attachment{}, err
	}
	limit := b.cfg.MaxUploadBytes
	tooLarge := func() error {
		return bridgeerr.New(bridgeerr.CodeUploadValidation, fmt.Sprintf("file is larger than %d bytes", limit)).
			WithDetails(map[string]any{"filename": name, "maxBytes": limit}).
			WithStatus(fiber.StatusRequestEntityTooLarge)
	}
	if limit > 0 && fh.Size > limit {
		return contracts.Attachment{}, tooLarge()
	}
	f, err := fh.Open()
	if err != nil {
		return contracts.Attachment{}, bridgeerr.Wrap(bridgeerr.CodeInternal, err, "internal error")
	}
	defer f.Close()
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	content, err := io.ReadAll(r)
	if err != nil {
		return contracts.Attachment{}, bridgeerr.Wrap(bridgeerr.CodeInternal, err, "internal error")
	}
	if limit > 0 && int64(len(content)) > limit {
		return contracts.Attachment{}, tooLarge()
	}
	return contracts.NewAttachment(name, ct, content), nil
}

// uploadType normalises a file's declared Content-Type and checks it
// against AllowedUploadTypes.
func (b *Bridge) uploadType(header string) (string, error) {
	mt := mediaType(header)
	switch mt {
	case "":
		mt = "application/octet-stream"
	case "invalid":
		return "", bridgeerr.New(bridgeerr.CodeUploadValidation, "invalid file content type").
			WithDetails(map[string]any{"reason": "unparsable Content-Type"})
	}
	if len(b.allowed) == 0 {
		return mt, nil
	}
	for _, m := range b.allowed {
		if m.matches(mt) {
			return mt, nil
		}
	}
	return "", bridgeerr.New(bridgeerr.CodeUploadValidation, "file content type is not allowed").
		WithDetails(map[string]any{"contentType": mt, "allowed": b.cfg.AllowedUploadTypes})
}

// checkUploadPolicy runs Config.Upload; a foreign error becomes a generic
// UPLOAD_VALIDATION_ERROR.
func (b *Bridge) checkUploadPolicy(c *fiber.Ctx, auth contracts.AuthContext, atts []contracts.Attachment) error {
	if b.cfg.Upload == nil {
		return nil
	}
	err := b.cfg.Upload.CheckUpload(c.UserContext(), auth, atts)
	if err == nil {
		return nil
	}
	var be *bridgeerr.Error
	if errors.As(err, &be) {
		return be
	}
	return bridgeerr.Wrap(bridgeerr.CodeUploadValidation, err, "upload rejected")
}

// writeJSON answers status with v encoded by encoding/json (independent of
// the app's JSONEncoder, so the wire format is the protocol's).
func writeJSON(c *fiber.Ctx, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInternal, err, "internal error")
	}
	return writeBody(c, status, body)
}

func writeBody(c *fiber.Ctx, status int, body []byte) error {
	c.Status(status)
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSONCharsetUTF8)
	c.Response().SetBodyRaw(body)
	return nil
}
