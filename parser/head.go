package parser

// The machinery both head parsers share: byte classes, line endings, the
// field-line scanner, the HTTP-version scanner, and the one pass over the
// parsed fields that gathers what framing and connection handling need.

// Byte classes, one bit each, so that every inner loop is one table load.
const (
	cTchar  = 1 << iota // token character (RFC 9110 §5.6.2)
	cValue              // field-value and reason-phrase byte: VCHAR, SP, HTAB, obs-text
	cTarget             // request-target byte: 0x21..0x7E
	cHost               // reg-name byte without pct-encoding: unreserved / sub-delims
	cCtl                // control byte other than CR and LF, which end lines
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c < 0x20 || c == 0x7f:
			if c == '\t' {
				t[c] |= cValue
			}
			if c != '\r' && c != '\n' {
				t[c] |= cCtl
			}
			continue
		case c == ' ':
			t[c] |= cValue
			continue
		case c >= 0x80:
			t[c] |= cValue
			continue
		}
		t[c] |= cValue | cTarget
		isAlnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if isAlnum || contains("!#$%&'*+-.^_`|~", c) {
			t[c] |= cTchar
		}
		if isAlnum || contains("-._~!$&'()*+,;=", c) {
			t[c] |= cHost
		}
	}
	return t
}()

func contains(s string, c int) bool {
	for i := 0; i < len(s); i++ {
		if int(s[i]) == c {
			return true
		}
	}
	return false
}

func isToken(b []byte) bool {
	for _, c := range b {
		if class[c]&cTchar == 0 {
			return false
		}
	}
	return len(b) > 0
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// lineEnd checks the line terminator at b[i], which is CR or LF: nil for
// CRLF, ErrIncomplete when the byte after a CR has not arrived yet.
func lineEnd(b []byte, i int) error {
	if b[i] == '\n' {
		return ErrBareLF
	}
	if i+1 == len(b) {
		return ErrIncomplete
	}
	if b[i+1] != '\n' {
		return ErrBareCR
	}
	return nil
}

// unexpected names the rejection for byte c where a start-line element
// (method, target, version, status) wanted something else: control bytes
// and broken line endings have their own sentinels, the rest is bad.
func unexpected(b []byte, i int, bad *Error) error {
	c := b[i]
	if class[c]&cCtl != 0 {
		return ErrCtl
	}
	if c == '\r' || c == '\n' {
		if err := lineEnd(b, i); err != nil {
			return err
		}
	}
	return bad
}

// parseVersion scans "HTTP/d.d" at b[i], rejecting at the first byte that
// cannot belong to one, so that garbage is refused before the head ends.
// It returns the index after the version; the caller checks what follows
// and whether the version is one we speak.
func parseVersion(b []byte, i int) (major, minor, next int, err error) {
	const name = "HTTP/"
	for k := 0; k < len("HTTP/d.d"); k++ {
		if i+k == len(b) {
			return 0, 0, 0, ErrIncomplete
		}
		c := b[i+k]
		var ok bool
		switch {
		case k < len(name):
			ok = c == name[k]
		case k == 6:
			ok = c == '.'
		default:
			ok = '0' <= c && c <= '9'
		}
		if !ok {
			return 0, 0, 0, unexpected(b, i+k, ErrBadVersion)
		}
	}
	return int(b[i+5] - '0'), int(b[i+7] - '0'), i + 8, nil
}

// parseFieldLine parses the field line, or the blank line ending the
// section, that starts at b[i]. It returns the index after the line's CRLF
// and end=true for the blank line. Value slices are capped, so appending to
// one can never overwrite the buffer behind it.
func parseFieldLine(b []byte, i int) (f Field, next int, end bool, err error) {
	start := i
	for ; i < len(b); i++ {
		c := b[i]
		if class[c]&cTchar != 0 {
			continue
		}
		switch {
		case c == ':' && i > start:
			return parseFieldValue(b, start, i)
		case c == '\r' || c == '\n':
			if err := lineEnd(b, i); err != nil {
				return Field{}, 0, false, err
			}
			if i == start {
				return Field{}, i + 2, true, nil
			}
			return Field{}, 0, false, ErrBadFieldName
		case isOWS(c):
			if i == start {
				// A field line may not start with whitespace: after a
				// field it would continue that field (obs-fold), after
				// the start line it would hide a field from some parsers.
				return Field{}, 0, false, ErrObsFold
			}
			return Field{}, 0, false, spaceInName(b, i)
		case class[c]&cCtl != 0:
			return Field{}, 0, false, ErrCtl
		default:
			return Field{}, 0, false, ErrBadFieldName
		}
	}
	return Field{}, 0, false, ErrIncomplete
}

// spaceInName tells "Name : v", a classic smuggling vector some servers
// read as "Name", from a name with whitespace inside it.
func spaceInName(b []byte, i int) error {
	for ; i < len(b); i++ {
		switch {
		case b[i] == ':':
			return ErrSpaceColon
		case !isOWS(b[i]):
			return ErrBadFieldName
		}
	}
	return ErrIncomplete
}

func parseFieldValue(b []byte, start, colon int) (Field, int, bool, error) {
	i := colon + 1
	for i < len(b) && isOWS(b[i]) {
		i++
	}
	vs := i
	for ; i < len(b); i++ {
		c := b[i]
		if class[c]&cValue != 0 {
			continue
		}
		if c != '\r' && c != '\n' {
			return Field{}, 0, false, ErrCtl
		}
		if err := lineEnd(b, i); err != nil {
			return Field{}, 0, false, err
		}
		ve := i
		for ve > vs && isOWS(b[ve-1]) {
			ve--
		}
		f := Field{Name: b[start:colon:colon], Value: b[vs:ve:ve]}
		return f, i + 2, false, nil
	}
	return Field{}, 0, false, ErrIncomplete
}

// parseFields appends the field lines starting at b[i] to fs, through the
// blank line, and returns the index after it.
func parseFields(b []byte, i int, fs *Fields, maxFields int) (int, error) {
	for {
		f, next, end, err := parseFieldLine(b, i)
		if err != nil {
			return 0, err
		}
		if end {
			return next, nil
		}
		if len(*fs) == maxFields {
			return 0, ErrTooManyFields
		}
		*fs = append(*fs, f)
		i = next
	}
}

// headInfo is what the fields say about framing and the connection,
// gathered in one pass. Request- and response-specific rules read it.
type headInfo struct {
	hasCL     bool
	cl        int64
	clText    []byte // the first Content-Length element as sent
	hasTE     bool
	codings   int // transfer codings across all Transfer-Encoding fields
	chunkeds  int // how many of them are chunked
	lastChunk bool
	badCoding bool // a coding that is not a bare token, or an empty one
	close     bool
	keepAlive bool
	hosts     int
	host      []byte
	expects   int
	expect    []byte
}

func scanHead(fs Fields) (h headInfo, err error) {
	for _, f := range fs {
		name := f.Name
		switch len(name) {
		case len("host"):
			if equalFold(name, "host") {
				h.hosts++
				h.host = f.Value
			}
		case len("expect"):
			if equalFold(name, "expect") {
				h.expects++
				h.expect = f.Value
			}
		case len("trailer"):
			if equalFold(name, "trailer") {
				for item := range listItems(f.Value) {
					// A trailer may not redefine how the body was framed
					// (RFC 9110 §6.5.1); declaring one is a smuggling probe.
					if equalFold(item, "content-length") || equalFold(item, "transfer-encoding") || equalFold(item, "trailer") {
						return h, ErrBadTrailer
					}
				}
			}
		case len("connection"):
			if equalFold(name, "connection") {
				h.close = h.close || HasToken(f.Value, "close")
				h.keepAlive = h.keepAlive || HasToken(f.Value, "keep-alive")
			}
		case len("content-length"):
			if equalFold(name, "content-length") {
				if err := h.addContentLength(f.Value); err != nil {
					return h, err
				}
			}
		case len("transfer-encoding"):
			if equalFold(name, "transfer-encoding") {
				h.addTransferEncoding(f.Value)
			}
		}
	}
	return h, nil
}

// addContentLength accepts a list of identical values (RFC 9110 §8.6), so
// "5, 5" or two fields of 5 read as 5. Identical means the same digits as
// sent: "5" next to "05" is refused, as a parser comparing text would.
func (h *headInfo) addContentLength(v []byte) error {
	for item := range listItemsAll(v) {
		if len(item) == 0 {
			return ErrBadCL
		}
		var n int64
		for _, c := range item {
			if c < '0' || c > '9' {
				return ErrBadCL
			}
			d := int64(c - '0')
			if n > (1<<63-1-d)/10 {
				return ErrBadCL
			}
			n = n*10 + d
		}
		if h.hasCL {
			if string(item) != string(h.clText) {
				return ErrDupCL
			}
			continue
		}
		h.hasCL, h.cl, h.clText = true, n, item
	}
	return nil
}

func (h *headInfo) addTransferEncoding(v []byte) {
	h.hasTE = true
	for item := range listItemsAll(v) {
		h.codings++
		chunked := equalFold(item, "chunked")
		if chunked {
			h.chunkeds++
		}
		h.lastChunk = chunked
		if !isToken(item) {
			h.badCoding = true
		}
	}
}

// listItemsAll yields every element of a comma-separated list, OWS
// trimmed, empty ones included: where a field decides framing, "chunked,"
// is refused rather than read as "chunked".
func listItemsAll(v []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for {
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			if !yield(trimOWS(v[:i])) || i == len(v) {
				return
			}
			v = v[i+1:]
		}
	}
}

// listItems yields the non-empty elements of a comma-separated list, the
// way RFC 9110 §5.6.1 has recipients read lists.
func listItems(v []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for item := range listItemsAll(v) {
			if len(item) > 0 && !yield(item) {
				return
			}
		}
	}
}

// window cuts b to the head limit, so no scan reads past it.
func window(b []byte, max int) []byte {
	if len(b) > max {
		return b[:max]
	}
	return b
}

// finish turns running out of window into ErrHeadTooLarge once the limit's
// worth of bytes has arrived, since then more input cannot help.
func finish(n int, err error, have, max int) (int, error) {
	if err == ErrIncomplete && have >= max {
		return 0, ErrHeadTooLarge
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}
