package h2

import (
	"errors"

	"golang.org/x/net/http2"

	"github.com/accel-proxy/accel/parser"
)

// blockMode says what the header block being decoded is for.
type blockMode uint8

const (
	blockRequest  blockMode = iota // a new stream's request head
	blockTrailers                  // trailers of an open stream
	blockDiscard                   // decoded only to keep HPACK in step
)

// span is a slice of the header block's arena.
type span struct{ off, end int }

// headerBlock is the header block being decoded, owned by the loop. Field
// bytes are copied into arena as the decoder emits them.
type headerBlock struct {
	id        uint32
	mode      blockMode
	endStream bool
	// errCode, when set, resets the stream once the block is decoded.
	errCode http2.ErrCode
	errWhy  string
	size    int // encoded bytes so far
	list    int // decoded size, RFC 9113 §6.5.2
	// tooLarge is set once the decoded list passed MaxHeaderListSize.
	tooLarge  bool
	malformed string
	regular   bool // a regular field was seen: no pseudo-header may follow

	arena                           []byte
	method, scheme, path, authority span
	pseudo                          uint8 // bits of the pseudo-headers seen
	host                            span
	hasHost                         bool
	fields                          []fieldSpan
	cookies                         []span
	contentLength                   int64
}

type fieldSpan struct{ name, value span }

const (
	pseudoMethod = 1 << iota
	pseudoScheme
	pseudoPath
	pseudoAuthority
)

// recentIDs remembers the last streams opened, to tell a HEADERS on a
// closed stream (STREAM_CLOSED) from one on an id never used (PROTOCOL_ERROR).
const recentIDs = 64

func (c *conn) onHeaders(fh http2.FrameHeader, p []byte) error {
	id := fh.StreamID
	if id == 0 || id%2 == 0 {
		return connError{http2.ErrCodeProtocol, "bad_stream_id"}
	}
	var pad int
	if fh.Flags.Has(http2.FlagHeadersPadded) {
		if len(p) < 1 {
			return connError{http2.ErrCodeFrameSize, "bad_frame"}
		}
		pad, p = int(p[0]), p[1:]
	}
	var dep uint32
	if fh.Flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return connError{http2.ErrCodeFrameSize, "bad_frame"}
		}
		dep = (uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])) & 0x7fffffff
		p = p[5:]
	}
	if pad > len(p) {
		return connError{http2.ErrCodeProtocol, "bad_padding"}
	}
	frag := p[:len(p)-pad]

	h := &c.hdr
	arena, fields, cookies := h.arena[:0], h.fields[:0], h.cookies[:0]
	*h = headerBlock{id: id, endStream: fh.Flags.Has(http2.FlagHeadersEndStream), contentLength: -1,
		arena: arena, fields: fields, cookies: cookies}
	// A stream opens under the same lock that reads goingAway: the final
	// GOAWAY, queued from another goroutine, names every stream opened
	// before it and none after.
	c.mu.Lock()
	st, goingAway := c.streams[id], c.goingAway
	opens := st == nil && id > c.lastStreamID && !goingAway
	if opens {
		c.lastStreamID = id
	}
	// Read under the lock: the stream's goroutine may be closing it.
	closed := st != nil && (st.reset || st.remoteClosed)
	c.mu.Unlock()
	switch {
	case opens:
		c.recent[c.recentN%recentIDs] = id
		c.recentN++
		if dep == id {
			h.mode, h.errCode, h.errWhy = blockDiscard, http2.ErrCodeProtocol, "self_dependency"
		}
	case st != nil:
		switch {
		case closed:
			h.mode, h.errCode, h.errWhy = blockDiscard, http2.ErrCodeStreamClosed, "stream_closed"
		case !h.endStream:
			// Trailers end the stream (RFC 9113 §8.1).
			h.mode, h.errCode, h.errWhy = blockDiscard, http2.ErrCodeProtocol, "trailers_without_end"
		default:
			h.mode = blockTrailers
		}
	case id <= c.lastStreamID:
		if c.wasOpened(id) {
			return connError{http2.ErrCodeStreamClosed, "stream_closed"}
		}
		return connError{http2.ErrCodeProtocol, "bad_stream_id"}
	case goingAway:
		// Opened after our GOAWAY: ignored (RFC 9113 §6.8).
		h.mode = blockDiscard
		c.ignoredMax = id
	}
	return c.headerFragment(frag, fh.Flags.Has(http2.FlagHeadersEndHeaders))
}

func (c *conn) onContinuation(fh http2.FrameHeader, p []byte) error {
	if len(p) < 1024 {
		// A small CONTINUATION moves next to nothing (one ends most long
		// blocks, refunded with the request): a flood of them is cut by
		// the idle-frame budget before the block's byte bound.
		if err := c.idleFrame(); err != nil {
			return err
		}
	}
	return c.headerFragment(p, fh.Flags.Has(http2.FlagHeadersEndHeaders))
}

func (c *conn) wasOpened(id uint32) bool {
	for _, r := range c.recent {
		if r == id {
			return true
		}
	}
	return false
}

// headerFragment decodes one fragment of the block; the last one ends it.
func (c *conn) headerFragment(frag []byte, last bool) error {
	h := &c.hdr
	h.size += len(frag)
	if h.size > c.cfg.MaxHeaderBlockSize {
		c.cfg.Log.Warn("http2 connection cut: header block over the limit",
			"peer", c.info.Remote.String(), "limit", "max_header_block_size", "max", c.cfg.MaxHeaderBlockSize)
		return connError{http2.ErrCodeEnhanceYourCalm, "header_block_too_large"}
	}
	if err := c.dec.write(frag); err != nil {
		if err == errStringLength {
			// One string longer than the whole list may be: the block
			// cannot be decoded on, so neither can the connection.
			return connError{http2.ErrCodeEnhanceYourCalm, "header_list_too_large"}
		}
		return connError{http2.ErrCodeCompression, "hpack"}
	}
	if !last {
		return nil
	}
	if err := c.dec.end(); err != nil {
		return connError{http2.ErrCodeCompression, "hpack"}
	}
	switch {
	case h.errCode != 0 || h.errWhy != "":
		return c.streamError(h.id, h.errCode, h.errWhy)
	case h.mode == blockTrailers:
		return c.endTrailers()
	case h.mode == blockRequest:
		return c.newRequest()
	}
	return nil
}

// onField is the decoder's emit function: it checks each field as RFC 9113
// §8.2–8.3 requires and copies it into the block. name and value are valid
// until it returns.
func (c *conn) onField(name, value []byte) {
	h := &c.hdr
	if h.mode == blockDiscard || h.tooLarge {
		return
	}
	h.list += len(name) + len(value) + 32
	if h.list > c.cfg.MaxHeaderListSize {
		h.tooLarge = true
		return
	}
	if h.malformed != "" {
		return
	}
	if !validValue(value) {
		h.malformed = "bad_field_value"
		return
	}
	if len(name) > 0 && name[0] == ':' {
		if h.mode == blockTrailers || h.regular {
			h.malformed = "pseudo_header_order"
			return
		}
		var bit uint8
		var sp *span
		switch string(name) {
		case ":method":
			bit, sp = pseudoMethod, &h.method
		case ":scheme":
			bit, sp = pseudoScheme, &h.scheme
		case ":path":
			bit, sp = pseudoPath, &h.path
		case ":authority":
			bit, sp = pseudoAuthority, &h.authority
		default:
			h.malformed = "bad_pseudo_header"
			return
		}
		if h.pseudo&bit != 0 {
			h.malformed = "duplicate_pseudo_header"
			return
		}
		h.pseudo |= bit
		*sp = h.add(value)
		return
	}
	h.regular = true
	if !validName(name) {
		h.malformed = "bad_field_name"
		return
	}
	if parser.ConnectionSpecific(name, value) {
		h.malformed = "connection_specific"
		return
	}
	if h.mode == blockTrailers {
		// Trailers are checked, then dropped: HTTP/1.1 origins get the
		// body with a length or chunked, without them.
		return
	}
	switch string(name) {
	case "content-length":
		n, ok := parseLength(value)
		if !ok || h.contentLength >= 0 && h.contentLength != n {
			h.malformed = "bad_content_length"
			return
		}
		h.contentLength = n
	case "host":
		if h.hasHost {
			h.malformed = "duplicate_host"
			return
		}
		h.host, h.hasHost = h.add(value), true
	case "cookie":
		h.cookies = append(h.cookies, h.add(value))
	default:
		n := h.add(name)
		canonical(h.arena[n.off:n.end])
		h.fields = append(h.fields, fieldSpan{n, h.add(value)})
	}
}

var cookieName = []byte("Cookie")

// canonical upper-cases the first letter of each dash-separated word, as
// HTTP/1.1 heads usually spell names: origins see one spelling whichever
// protocol the client spoke.
func canonical(b []byte) {
	up := true
	for i, ch := range b {
		if up && 'a' <= ch && ch <= 'z' {
			b[i] = ch - ('a' - 'A')
		}
		up = ch == '-'
	}
}

func (h *headerBlock) add(s []byte) span {
	off := len(h.arena)
	h.arena = append(h.arena, s...)
	return span{off, len(h.arena)}
}

func (h *headerBlock) bytes(s span) []byte { return h.arena[s.off:s.end:s.end] }

// validName: a lower-case token (RFC 9113 §8.2.1).
func validName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameChars[s[i]] {
			return false
		}
	}
	return true
}

var nameChars = func() (t [256]bool) {
	for _, ch := range []byte("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") {
		t[ch] = true
	}
	return
}()

// validValue: no NUL, CR or LF, and no leading or trailing whitespace
// (RFC 9113 §8.2.1).
func validValue(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch == 0 || ch == '\r' || ch == '\n' {
			return false
		}
	}
	if n := len(s); n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n-1] == ' ' || s[n-1] == '\t') {
		return false
	}
	return true
}

func parseLength(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// endTrailers ends the request body of a stream whose trailers arrived.
func (c *conn) endTrailers() error {
	h := &c.hdr
	if h.tooLarge || h.malformed != "" {
		return c.streamError(h.id, http2.ErrCodeProtocol, "bad_trailers")
	}
	c.mu.Lock()
	st := c.streams[h.id]
	if st != nil && !st.closed {
		if st.declLen >= 0 && st.recvLen != st.declLen {
			c.resetLocked(st, http2.ErrCodeProtocol)
			c.mu.Unlock()
			c.cfg.Count("content_length")
			return c.noteReset("content_length")
		}
		c.endRemoteLocked(st)
	}
	c.mu.Unlock()
	return nil
}

// newRequest checks a decoded request head and serves it: inline when the
// handler can answer without waiting, else in a goroutine started at the
// end of the read.
func (c *conn) newRequest() error {
	h := &c.hdr
	c.refund()
	if h.malformed == "" && !h.tooLarge {
		h.malformed = h.checkPseudo()
	}
	if h.malformed != "" {
		c.s.h.Refused(c.info.Remote, 400, "malformed_request")
		return c.streamError(h.id, http2.ErrCodeProtocol, "malformed_request")
	}
	c.mu.Lock()
	refused := c.open+c.resetRunning >= c.cfg.MaxConcurrentStreams
	c.mu.Unlock()
	if refused {
		// Streams over the advertised limit, or over the work the limit
		// allows (streams reset while their fetch runs still count).
		c.cfg.Count("refused_stream")
		c.s.h.Refused(c.info.Remote, 503, "refused_stream")
		c.mu.Lock()
		c.out = appendRST(c.out, h.id, http2.ErrCodeRefusedStream)
		c.queuedControl++
		c.mu.Unlock()
		return c.noteReset("refused_stream")
	}
	if h.endStream && h.contentLength > 0 {
		c.s.h.Refused(c.info.Remote, 400, "bad_content_length")
		return c.streamError(h.id, http2.ErrCodeProtocol, "bad_content_length")
	}
	if len(h.cookies) > 0 {
		// Cookie crumbs become one field for HTTP/1.1 (RFC 9113 §8.2.3).
		name := h.add(cookieName)
		off := len(h.arena)
		for i, cs := range h.cookies {
			if i > 0 {
				h.arena = append(h.arena, "; "...)
			}
			h.arena = append(h.arena, h.arena[cs.off:cs.end]...)
		}
		h.fields = append(h.fields, fieldSpan{name, span{off, len(h.arena)}})
	}
	st := c.newStream(h.id)
	st.remoteClosed = h.endStream
	st.declLen = h.contentLength
	c.mu.Lock()
	c.open++
	c.mu.Unlock()

	req := &st.req
	st.arena = append(st.arena[:0], h.arena...)
	h.build(req, st.arena)
	isHead := string(req.Method) == "HEAD"
	if h.tooLarge {
		c.fastW.reset(st, true, isHead)
		c.fastW.writeError(431, "request header fields too large\n")
		c.finishInline(st)
		c.cfg.Count("header_list_too_large")
		c.s.h.Refused(c.info.Remote, 431, "header_list_too_large")
		return c.noteReset("header_list_too_large")
	}
	if err := parser.CheckHead(req); err != nil {
		// What an HTTP/1.1 origin could read two ways never leaves.
		var pe *parser.Error
		reason := "bad_request"
		if errors.As(err, &pe) {
			c.cfg.Count(pe.Name)
			reason = pe.Name
		}
		c.s.h.Refused(c.info.Remote, parser.Status(err), reason)
		c.fastW.reset(st, true, isHead)
		c.fastW.writeError(parser.Status(err), err.Error()+"\n")
		c.finishInline(st)
		return nil
	}
	if h.endStream {
		c.fastW.reset(st, true, isHead)
		if c.s.h.ServeFast(req, &c.fastW, &c.info) {
			c.finishInline(st)
			return nil
		}
	}
	// The request must wait: it goes to Serve at the end of this read.
	st.inline = false
	st.running = true
	st.w.reset(st, false, isHead)
	if !h.endStream {
		st.body = &bodyBuf{st: st, wake: make(chan struct{}, 1)}
	}
	c.mu.Lock()
	c.streams[st.id] = st
	c.mu.Unlock()
	c.start = append(c.start, st)
	return nil
}

// finishInline ends a response written on the loop: the stream is done,
// or it waits in the map for window to send the rest.
func (c *conn) finishInline(st *stream) {
	w := &c.fastW
	if !w.wroteHead {
		w.writeError(500, "no response\n")
	}
	c.mu.Lock()
	w.endLocked()
	c.fastW.st = nil
	if !st.closed && !st.remoteClosed {
		c.resetLocked(st, http2.ErrCodeNo)
	}
	if st.closed {
		c.maybeFreeLocked(st)
	} else {
		c.streams[st.id] = st
	}
	c.mu.Unlock()
}

// checkPseudo applies RFC 9113 §8.3.1 to the pseudo-headers.
func (h *headerBlock) checkPseudo() string {
	if h.pseudo&pseudoMethod == 0 {
		return "missing_pseudo_header"
	}
	if string(h.bytes(h.method)) == "CONNECT" {
		// Tunnels are not proxied; the pipeline refuses them, but the
		// request must be well-formed to get that far (§8.5).
		if h.pseudo != pseudoMethod|pseudoAuthority {
			return "bad_connect"
		}
		return ""
	}
	if h.pseudo&(pseudoScheme|pseudoPath) != pseudoScheme|pseudoPath {
		return "missing_pseudo_header"
	}
	path := h.bytes(h.path)
	switch {
	case len(path) == 0:
		return "empty_path"
	case path[0] == '/':
	case string(path) == "*" && string(h.bytes(h.method)) == "OPTIONS":
	default:
		return "bad_path"
	}
	if h.pseudo&pseudoAuthority != 0 && h.hasHost && string(h.bytes(h.authority)) != string(h.bytes(h.host)) {
		return "host_mismatch"
	}
	return ""
}

// build fills req from the block, its slices pointing into arena (a copy
// of the block's arena that lives as long as the stream).
func (h *headerBlock) build(req *parser.Request, arena []byte) {
	at := func(s span) []byte { return arena[s.off:s.end:s.end] }
	fields := req.Fields[:0]
	req.Reset()
	req.Method = at(h.method)
	req.Target = at(h.path)
	if string(req.Method) == "CONNECT" {
		req.Target = at(h.authority)
	}
	switch {
	case h.pseudo&pseudoAuthority != 0:
		req.Host = at(h.authority)
	case h.hasHost:
		req.Host = at(h.host)
	}
	req.Major = 2
	for _, f := range h.fields {
		fields = append(fields, parser.Field{Name: at(f.name), Value: at(f.value)})
	}
	req.Fields = fields
	req.ContentLength = h.contentLength
	if req.ContentLength < 0 && !h.endStream {
		req.ContentLength = -1
	} else if req.ContentLength < 0 {
		req.ContentLength = 0
	}
}
