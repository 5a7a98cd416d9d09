package wsframe

// Frame is one complete item a Decoder hands out: a control frame (close,
// ping, pong) or a whole text message (Op is OpText, fragments joined).
// Payload is unmasked and valid until the next call of Next or Feed.
type Frame struct {
	Op      byte
	Payload []byte
}

// Decoder turns the bytes a client sends, fed in any split, into control
// frames and text messages. The zero value refuses every data frame; set
// Limit to accept text messages. A Decoder is used by one goroutine at a
// time (the connection's reader); after it returned an error it must not be
// used again.
type Decoder struct {
	// Limit is the largest text message Next assembles, fragments
	// included; a larger one is refused with ErrTooLarge as soon as a
	// header shows it. Zero: no data frame is expected, and the header of
	// one is refused with ErrUnexpected.
	Limit int

	in    []byte // input not consumed yet, from off
	off   int32
	msg   []byte // text message being assembled from fragments
	inMsg bool   // a message was started and not finished
	done  bool   // msg was handed out by the last Next
}

// Feed appends a copy of p to the input.
func (d *Decoder) Feed(p []byte) {
	if len(p) == 0 {
		return
	}
	if d.off > 0 {
		d.in = append(d.in[:0], d.in[d.off:]...)
		d.off = 0
	}
	d.in = append(d.in, p...)
}

// Buffered returns how many bytes of input wait for the rest of a frame.
func (d *Decoder) Buffered() int { return len(d.in) - int(d.off) }

// Next returns the next complete control frame or text message in the
// input. ok is false when the input holds none yet: feed more. A refused
// frame returns a *ProtocolError (the client broke the protocol).
func (d *Decoder) Next() (f Frame, ok bool, err error) {
	if d.done {
		d.msg, d.done = nil, false
	}
	for {
		data := d.in[d.off:]
		h, n, err := ParseHeader(data)
		if err != nil {
			return Frame{}, false, err
		}
		if n == 0 {
			d.compact()
			return Frame{}, false, nil
		}
		if !h.IsControl() {
			if err := d.checkData(h); err != nil {
				return Frame{}, false, err
			}
		}
		if int64(len(data)-n) < h.Len {
			d.compact()
			return Frame{}, false, nil
		}
		p := data[n : n+int(h.Len)]
		Unmask(p, h.Key, 0)
		d.off += int32(n + int(h.Len))
		if h.IsControl() {
			return Frame{Op: h.Op, Payload: p}, true, nil
		}
		if h.Fin && !d.inMsg {
			return Frame{Op: OpText, Payload: p}, true, nil
		}
		d.msg = append(d.msg, p...)
		if h.Fin {
			d.inMsg, d.done = false, true
			return Frame{Op: OpText, Payload: d.msg}, true, nil
		}
		d.inMsg = true
	}
}

// checkData refuses a data frame header that does not fit the message
// being assembled or the limit. It changes nothing: Next may check the
// same header again once more of its payload has come in.
func (d *Decoder) checkData(h Header) error {
	switch {
	case d.Limit <= 0:
		return ErrUnexpected
	case h.Op == OpBinary && !d.inMsg:
		return ErrBinary
	case h.Op == OpContinuation && !d.inMsg, h.Op != OpContinuation && d.inMsg:
		return ErrInvalidFrame
	case int64(len(d.msg))+h.Len > int64(d.Limit):
		return ErrTooLarge
	}
	return nil
}

// compact drops consumed input; an idle decoder holds no buffer.
func (d *Decoder) compact() {
	if int(d.off) == len(d.in) {
		d.in, d.off = nil, 0
	}
}
