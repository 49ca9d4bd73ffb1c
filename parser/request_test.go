package parser

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

var allErrors = []*Error{
	ErrCLTE, ErrDupCL, ErrBadCL, ErrTENotChunked, ErrObsFold, ErrBareCR,
	ErrBareLF, ErrCtl, ErrSpaceColon, ErrBadMethod, ErrBadFieldName,
	ErrBadTarget, ErrBadVersion, ErrBadStatus, ErrNoHost, ErrDupHost,
	ErrBadChunk, ErrChunkOverflow, ErrHeadTooLarge, ErrTargetTooLong,
	ErrTooManyFields, ErrVersionUnsupp, ErrBadHost, ErrTEUnsupported,
	ErrExpectation, ErrBadTrailer, ErrTrailerTooLarge,
}

type rejectCase struct {
	line   int
	want   *Error
	status int
	input  string
}

// loadRejects reads a testdata file of "name status quoted-input" lines.
func loadRejects(t *testing.T, path string) []rejectCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Error{}
	for _, e := range allErrors {
		byName[e.Name] = e
	}
	var cases []rejectCase
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(text, " ")
		status, quoted, _ := strings.Cut(rest, " ")
		want, ok := byName[name]
		code, err1 := strconv.Atoi(status)
		input, err2 := strconv.Unquote(quoted)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("%s:%d: malformed case %q", path, line, text)
		}
		cases = append(cases, rejectCase{line, want, code, input})
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return cases
}

func TestParseRequestRejects(t *testing.T) {
	for _, c := range loadRejects(t, "testdata/reject-requests.txt") {
		var r Request
		n, err := ParseRequest([]byte(c.input), &r, Limits{})
		if !errors.Is(err, c.want) || n != 0 {
			t.Errorf("line %d: ParseRequest(%q) = %d, %v; want %v", c.line, c.input, n, err, c.want)
			continue
		}
		if got := Status(err); got != c.status {
			t.Errorf("line %d: Status = %d, want %d", c.line, got, c.status)
		}
	}
}

// TestParseRequestRejectsEarly checks that every rejection is also made
// from the bytes that arrived so far when they already decide it, or is
// ErrIncomplete: a prefix never yields a different error or a success.
func TestParseRequestRejectsEarly(t *testing.T) {
	for _, c := range loadRejects(t, "testdata/reject-requests.txt") {
		for k := range len(c.input) {
			var r Request
			_, err := ParseRequest([]byte(c.input[:k]), &r, Limits{})
			if err != ErrIncomplete && !errors.Is(err, c.want) {
				t.Errorf("line %d: prefix %q: err = %v, want ErrIncomplete or %v", c.line, c.input[:k], err, c.want)
				break
			}
		}
	}
}

func TestParseRequestAccepts(t *testing.T) {
	tests := []struct {
		name, in string
		want     Request
		fields   []string // name=value pairs in order, when checked
	}{
		{
			name:   "typical GET",
			in:     "GET /a?b=c HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n",
			want:   Request{Method: []byte("GET"), Target: []byte("/a?b=c"), Host: []byte("a.example"), Major: 1, Minor: 1},
			fields: []string{"Host=a.example", "Accept=*/*"},
		},
		{
			name: "leading empty lines are skipped",
			in:   "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			want: Request{Method: []byte("GET"), Target: []byte("/"), Host: []byte("a"), Major: 1, Minor: 1},
		},
		{
			name: "HTTP/1.0 needs no Host and closes",
			in:   "GET / HTTP/1.0\r\n\r\n",
			want: Request{Method: []byte("GET"), Target: []byte("/"), Major: 1, Minor: 0, Close: true},
		},
		{
			name: "HTTP/1.0 keep-alive",
			in:   "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			want: Request{Method: []byte("GET"), Target: []byte("/"), Major: 1, Minor: 0},
		},
		{
			name: "Connection close among other tokens",
			in:   "GET / HTTP/1.1\r\nHost: a\r\nConnection: te, Close\r\n\r\n",
			want: Request{Method: []byte("GET"), Target: []byte("/"), Host: []byte("a"), Major: 1, Minor: 1, Close: true},
		},
		{
			name: "Content-Length",
			in:   "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
			want: Request{Method: []byte("POST"), Target: []byte("/p"), Host: []byte("a"), Major: 1, Minor: 1, ContentLength: 5},
		},
		{
			name: "identical Content-Length list and repeat",
			in:   "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\ncontent-length: 7\r\n\r\n",
			want: Request{Method: []byte("POST"), Target: []byte("/p"), Host: []byte("a"), Major: 1, Minor: 1, ContentLength: 7},
		},
		{
			name: "largest Content-Length",
			in:   "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
			want: Request{Method: []byte("POST"), Target: []byte("/p"), Host: []byte("a"), Major: 1, Minor: 1, ContentLength: 1<<63 - 1},
		},
		{
			name: "chunked, any case",
			in:   "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nTrailer: X-Sum\r\n\r\n",
			want: Request{Method: []byte("POST"), Target: []byte("/p"), Host: []byte("a"), Major: 1, Minor: 1, ContentLength: -1, Chunked: true},
		},
		{
			name: "Expect 100-continue",
			in:   "PUT /p HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
			want: Request{Method: []byte("PUT"), Target: []byte("/p"), Host: []byte("a"), Major: 1, Minor: 1, ContentLength: 1, Expect100: true},
		},
		{
			name: "Expect 100-continue ignored from HTTP/1.0",
			in:   "PUT /p HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
			want: Request{Method: []byte("PUT"), Target: []byte("/p"), Major: 1, Minor: 0, ContentLength: 1, Close: true},
		},
		{
			name: "absolute-form authority wins over Host",
			in:   "GET http://b.example:8080/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n",
			want: Request{Method: []byte("GET"), Target: []byte("http://b.example:8080/x?y"), Host: []byte("b.example:8080"), Major: 1, Minor: 1},
		},
		{
			name: "absolute-form without path",
			in:   "GET https://b.example HTTP/1.1\r\nHost: b.example\r\n\r\n",
			want: Request{Method: []byte("GET"), Target: []byte("https://b.example"), Host: []byte("b.example"), Major: 1, Minor: 1},
		},
		{
			name: "CONNECT authority-form",
			in:   "CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n",
			want: Request{Method: []byte("CONNECT"), Target: []byte("b.example:443"), Host: []byte("b.example:443"), Major: 1, Minor: 1},
		},
		{
			name: "OPTIONS asterisk-form, IPv6 Host",
			in:   "OPTIONS * HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n",
			want: Request{Method: []byte("OPTIONS"), Target: []byte("*"), Host: []byte("[2001:db8::1]:8080"), Major: 1, Minor: 1},
		},
		{
			name: "empty Host, as RFC 9112 §3.2 allows",
			in:   "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			want: Request{Method: []byte("GET"), Target: []byte("/"), Host: []byte{}, Major: 1, Minor: 1},
		},
		{
			name:   "values trimmed, inner whitespace and obs-text kept",
			in:     "GET /%41 HTTP/1.1\r\nHost: a\r\nX-A: \t a \t b \t\r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n",
			want:   Request{Method: []byte("GET"), Target: []byte("/%41"), Host: []byte("a"), Major: 1, Minor: 1},
			fields: []string{"Host=a", "X-A=a \t b", "X-B=", "X-C=caf\xc3\xa9"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			n, err := ParseRequest([]byte(tt.in), &r, Limits{})
			if err != nil || n != len(tt.in) {
				t.Fatalf("ParseRequest = %d, %v; want %d, nil", n, err, len(tt.in))
			}
			checkRequest(t, &r, &tt.want)
			if tt.fields != nil {
				var got []string
				for _, f := range r.Fields {
					got = append(got, string(f.Name)+"="+string(f.Value))
				}
				if strings.Join(got, "|") != strings.Join(tt.fields, "|") {
					t.Errorf("fields = %q, want %q", got, tt.fields)
				}
			}
		})
	}
}

func checkRequest(t *testing.T, got, want *Request) {
	t.Helper()
	if string(got.Method) != string(want.Method) || string(got.Target) != string(want.Target) ||
		string(got.Host) != string(want.Host) || (got.Host == nil) != (want.Host == nil) ||
		got.Major != want.Major || got.Minor != want.Minor ||
		got.ContentLength != want.ContentLength || got.Chunked != want.Chunked ||
		got.Close != want.Close || got.Expect100 != want.Expect100 {
		t.Errorf("got  %+v\nwant %+v", describe(got), describe(want))
	}
}

func describe(r *Request) string {
	return strconv.Quote(string(r.Method)) + " " + strconv.Quote(string(r.Target)) +
		" host=" + strconv.Quote(string(r.Host)) + " nilhost=" + strconv.FormatBool(r.Host == nil) +
		" v=" + strconv.Itoa(r.Major) + "." + strconv.Itoa(r.Minor) +
		" cl=" + strconv.FormatInt(r.ContentLength, 10) + " chunked=" + strconv.FormatBool(r.Chunked) +
		" close=" + strconv.FormatBool(r.Close) + " expect100=" + strconv.FormatBool(r.Expect100)
}

func TestParseRequestPipelined(t *testing.T) {
	b := []byte("POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" +
		"GET /2 HTTP/1.1\r\nHost: b\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHo")
	var r Request
	var targets []string
	for {
		n, err := ParseRequest(b, &r, Limits{})
		if err == ErrIncomplete {
			break
		}
		if err != nil {
			t.Fatalf("after %q: %v", targets, err)
		}
		targets = append(targets, string(r.Target)+"@"+string(r.Host))
		b = b[n:]
	}
	if got := strings.Join(targets, " "); got != "/1@a /2@b" {
		t.Errorf("parsed %q, want /1@a /2@b", got)
	}
	if string(b) != "GET /3 HTTP/1.1\r\nHo" {
		t.Errorf("left %q, want the incomplete third head", b)
	}
}

// TestParseRequestSplit feeds every prefix of a valid head, as a slow client
// would deliver it: each is ErrIncomplete, and the whole head parses.
func TestParseRequestSplit(t *testing.T) {
	heads := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"\r\nPOST /upload?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nTransfer-Encoding: chunked\r\nX: \t\r\n\r\n",
		"GET http://[::1]:80/ HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n",
	}
	for _, h := range heads {
		for k := range len(h) {
			var r Request
			if n, err := ParseRequest([]byte(h[:k]), &r, Limits{}); err != ErrIncomplete {
				t.Fatalf("prefix %q: %d, %v; want ErrIncomplete", h[:k], n, err)
			}
		}
		var r Request
		if n, err := ParseRequest([]byte(h+"body"), &r, Limits{}); err != nil || n != len(h) {
			t.Fatalf("%q: %d, %v; want %d, nil", h, n, err, len(h))
		}
	}
}

func TestParseRequestLimits(t *testing.T) {
	head := func(target string, fields int) string {
		var sb strings.Builder
		sb.WriteString("GET " + target + " HTTP/1.1\r\nHost: a\r\n")
		for i := range fields - 1 {
			sb.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
		}
		sb.WriteString("\r\n")
		return sb.String()
	}
	parse := func(in string, lim Limits) error {
		var r Request
		_, err := ParseRequest([]byte(in), &r, lim)
		return err
	}

	t.Run("head", func(t *testing.T) {
		h := head("/", 3)
		lim := Limits{MaxHeadBytes: len(h)}
		if err := parse(h, lim); err != nil {
			t.Errorf("head of exactly the limit: %v", err)
		}
		if err := parse(h[:len(h)-1], lim); err != ErrIncomplete {
			t.Errorf("head under the limit, unfinished: %v, want ErrIncomplete", err)
		}
		lim.MaxHeadBytes--
		if err := parse(h, lim); err != ErrHeadTooLarge {
			t.Errorf("head one over: %v, want ErrHeadTooLarge", err)
		}
		if err := parse(h[:lim.MaxHeadBytes], lim); err != ErrHeadTooLarge {
			t.Errorf("limit reached unfinished: %v, want ErrHeadTooLarge", err)
		}
		if got := Status(parse(h, lim)); got != 431 {
			t.Errorf("status %d, want 431", got)
		}
	})
	t.Run("target", func(t *testing.T) {
		target := "/" + strings.Repeat("a", 99)
		lim := Limits{MaxTargetBytes: 100}
		if err := parse(head(target, 1), lim); err != nil {
			t.Errorf("target of exactly the limit: %v", err)
		}
		// One byte more is refused before the rest of the head arrives.
		if err := parse("GET "+target+"a", lim); err != ErrTargetTooLong {
			t.Errorf("long target, unfinished head: %v, want ErrTargetTooLong", err)
		}
		if got := Status(parse(head(target+"a", 1), lim)); got != 414 {
			t.Errorf("status %d, want 414", got)
		}
	})
	t.Run("fields", func(t *testing.T) {
		if err := parse(head("/", 100), Limits{}); err != nil {
			t.Errorf("100 fields by default: %v", err)
		}
		if err := parse(head("/", 101), Limits{}); err != ErrTooManyFields {
			t.Errorf("101 fields by default: %v, want ErrTooManyFields", err)
		}
		if err := parse(head("/", 3), Limits{MaxFields: 2}); err != ErrTooManyFields {
			t.Errorf("3 fields, limit 2: %v, want ErrTooManyFields", err)
		}
	})
	t.Run("default head", func(t *testing.T) {
		big := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 64<<10)
		if err := parse(big, Limits{}); err != ErrHeadTooLarge {
			t.Errorf("64 KiB unfinished: %v, want ErrHeadTooLarge", err)
		}
	})
}

// TestParseRequestReuse checks that a Request reused for a smaller head
// keeps nothing of the larger one before it.
func TestParseRequestReuse(t *testing.T) {
	var r Request
	first := "POST / HTTP/1.0\r\nTransfer-Encoding: x\r\n\r\n"
	if _, err := ParseRequest([]byte(first), &r, Limits{}); err == nil {
		t.Fatal("first head accepted")
	}
	if _, err := ParseRequest([]byte("POST / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nContent-Length: 2\r\n\r\n"), &r, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRequest([]byte("GET / HTTP/1.1\r\nHost: b\r\n\r\n"), &r, Limits{}); err != nil {
		t.Fatal(err)
	}
	if len(r.Fields) != 1 || r.ContentLength != 0 || string(r.Host) != "b" || r.Fields.Has("A") {
		t.Errorf("stale state: fields %d, cl %d, host %q", len(r.Fields), r.ContentLength, r.Host)
	}
}

// TestParseRequestValueAppend checks that appending to a parsed value
// cannot overwrite the bytes after it in the caller's buffer.
func TestParseRequestValueAppend(t *testing.T) {
	b := []byte("GET / HTTP/1.1\r\nHost: a\r\nX: v\r\n\r\n")
	var r Request
	if _, err := ParseRequest(b, &r, Limits{}); err != nil {
		t.Fatal(err)
	}
	_ = append(r.Fields.Get("X"), "zzzz"...)
	_ = append(r.Method, "zzzz"...)
	if string(b) != "GET / HTTP/1.1\r\nHost: a\r\nX: v\r\n\r\n" {
		t.Errorf("buffer changed: %q", b)
	}
}

func TestParseRequestNoAllocs(t *testing.T) {
	for _, head := range []string{
		typicalGET,
		"POST /form HTTP/1.1\r\nHost: a.example\r\nContent-Length: 12, 12\r\nExpect: 100-continue\r\n\r\n",
		"PUT /up HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
	} {
		b := []byte(head)
		r := Request{Fields: make(Fields, 0, 16)}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := ParseRequest(b, &r, Limits{}); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v allocations for %q, want 0", allocs, head)
		}
	}
}

const typicalGET = "GET /static/app.js?v=3 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=abc123; theme=dark\r\n" +
	"If-None-Match: \"5d8c72a5-1a2b\"\r\n" +
	"\r\n"

// TestFieldValueEveryByteEveryPlace: every byte value at every place of
// a value: controls and DEL are refused wherever they sit, a bare CR or
// LF too, and HTAB, SP, VCHAR and obs-text are kept as sent (less OWS at
// either end), in requests and responses alike. A value scanner that
// skips ahead (a word at a time, say) must keep this.
func TestFieldValueEveryByteEveryPlace(t *testing.T) {
	base := []byte("abcdefghijklmnopqrstuvwx")
	for c := 0; c < 256; c++ {
		for at := range base {
			v := append([]byte(nil), base...)
			v[at] = byte(c)
			var want error
			switch {
			case c == '\r':
				want = ErrBareCR
			case c == '\n':
				want = ErrBareLF
			case c < 0x20 && c != '\t' || c == 0x7f:
				want = ErrCtl
			}
			heads := map[string]string{
				"request":  "GET / HTTP/1.1\r\nHost: a\r\nX-V: " + string(v) + "\r\n\r\n",
				"response": "HTTP/1.1 200 OK\r\nX-V: " + string(v) + "\r\nContent-Length: 0\r\n\r\n",
			}
			for kind, head := range heads {
				var fs Fields
				var err error
				if kind == "request" {
					r := Request{}
					_, err = ParseRequest([]byte(head), &r, Limits{})
					fs = r.Fields
				} else {
					r := Response{}
					_, err = ParseResponse([]byte(head), &r, Limits{})
					fs = r.Fields
				}
				if want != nil {
					if !errors.Is(err, want) {
						t.Fatalf("%s, byte %#x at %d: %v, want %v", kind, c, at, err, want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s, byte %#x at %d: %v", kind, c, at, err)
				}
				// OWS at either end is not part of the value.
				if got, w := string(fs.Get("x-v")), strings.Trim(string(v), " \t"); got != w {
					t.Fatalf("%s, byte %#x at %d: value %q, want %q", kind, c, at, got, w)
				}
			}
		}
	}
}
