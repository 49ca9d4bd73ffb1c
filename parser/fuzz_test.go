package parser

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"testing"
)

// addRequestSeeds gives a request fuzz target the classic smuggling and
// parser-confusion shapes to mutate from.
func addRequestSeeds(f *testing.F) {
	for _, s := range []string{
		// plain GET and a POST with a body, the shapes everything mutates from
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		// CL.TE: the front reads CL, the back TE
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		// TE.CL: TE first, then CL
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
		// TE hidden by whitespace before the colon
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
		// "chunked" followed by junk, and by whitespace
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\n",
		// TE behind obs-fold
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
		// TE through a vertical tab, and a non-ASCII lookalike
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xc2\xa0\r\n\r\n",
		// two TE fields, one of them not chunked
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
		// TE in HTTP/1.0
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		// double and listed Content-Length, equal and differing
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
		// bare LF and bare CR as line ends
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: y\rZ: w\r\n\r\n",
		// NUL in a value and in the target
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
		"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
		// two Host fields, and absolute-form against Host
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
		// CONNECT and OPTIONS forms, IPv6 hosts
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		// leading empty lines, HTTP/1.0 keep-alive, Expect
		"\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		// Trailer declaring framing fields
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n",
		// accepted edge cases net/http must accept too: empty Host, every
		// tchar in a name, obs-text in a value, sub-delims in a reg-name,
		// scheme case, absolute-form with only a query, leading zeros in CL
		"GET / HTTP/1.1\r\nHost:\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~0aZ: \x80\xff\t\r\n\r\n",
		"GET http://a!$&'()*+,;=-._~b:8080/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET HTTP://A.example?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a#frag HTTP/1.1\r\nHost: a\r\nContent-Length: 0005\r\n\r\n",
		// percent-encoding in target, and a pipelined second request
		"GET /a%2Fb%zz HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
}

func FuzzParseRequest(f *testing.F) {
	addRequestSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		n, err := ParseRequest(b, &r, Limits{})
		if err != nil {
			var pe *Error
			if n != 0 || err != ErrIncomplete && !errors.As(err, &pe) {
				t.Fatalf("ParseRequest = %d, %v: want 0 and ErrIncomplete or an *Error", n, err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		head := bytes.Clone(b[:n])
		var again Request
		n2, err := ParseRequest(head, &again, Limits{})
		if err != nil || n2 != n {
			t.Fatalf("re-parse of the consumed %q = %d, %v; want %d, nil", head, n2, err, n)
		}
		if describe(&r) != describe(&again) || !sameFields(r.Fields, again.Fields) {
			t.Fatalf("re-parse differs:\n%s\n%s", describe(&r), describe(&again))
		}
		if _, err := ParseRequest(head[:n-1], &again, Limits{}); err != ErrIncomplete {
			t.Fatalf("head without its last byte: %v, want ErrIncomplete", err)
		}
	})
}

func sameFields(a, b Fields) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Name, b[i].Name) || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		// two chunks, then the next message
		"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET",
		// extensions with token and quoted values
		"5;a=b;c=\"x\\\"y\"\r\nhello\r\n0;z\r\n\r\n",
		// trailer fields
		"1\r\na\r\n0\r\nX-Sum: 1\r\n\r\n",
		// size overflow and a size with 16 digits that fits
		"10000000000000000\r\n",
		"000000000000000a\r\n0123456789\r\n0\r\n\r\n",
		// whitespace after the size, where parsers disagree
		"5 \r\nhello\r\n0\r\n\r\n",
		// bare LF line ends
		"5\nhello\n0\n\n",
		// data longer than declared
		"3\r\nhello\r\n0\r\n\r\n",
		// obs-fold in the trailer
		"0\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		body, rest, err := decode(string(b), false)
		slowBody, slowRest, slowErr := decode(string(b), true)
		if body != slowBody || rest != slowRest || err != slowErr {
			t.Fatalf("read pattern changes the result: %q %q %v vs %q %q %v", body, rest, err, slowBody, slowRest, slowErr)
		}
		if len(body) > len(b) {
			t.Fatalf("decoded %d bytes from %d", len(body), len(b))
		}
		if err != nil {
			return
		}
		var enc bytes.Buffer
		cw := NewChunkedWriter(&enc)
		cw.Write([]byte(body))
		cw.Close()
		again, _, err := decode(enc.String(), false)
		if err != nil || again != body {
			t.Fatalf("re-encoded body decodes to %q, %v; want %q", again, err, body)
		}
	})
}

// FuzzDifferential holds our parser to being at least as strict as
// net/http's: a head we accept must be one http.ReadRequest accepts, and the
// two must agree on what it means. Two leniencies are ours by design and
// left out: the empty lines before a request-line that RFC 9112 §2.2 has us
// skip (net/http's server skips them too, ReadRequest does not), and a
// Content-Length list of identical values that RFC 9110 §8.6 allows.
func FuzzDifferential(f *testing.F) {
	addRequestSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		n, err := ParseRequest(b, &r, Limits{})
		if err != nil {
			return
		}
		for _, fl := range r.Fields {
			if EqualFold(fl.Name, "content-length") && bytes.IndexByte(fl.Value, ',') >= 0 {
				return
			}
		}
		head := b[:n]
		for len(head) >= 2 && head[0] == '\r' && head[1] == '\n' {
			head = head[2:]
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("we accept what net/http rejects (%v):\n%q", err, head)
		}
		if req.Method != string(r.Method) || req.RequestURI != string(r.Target) ||
			req.Host != string(r.Host) || req.ContentLength != r.ContentLength || req.Close != r.Close {
			t.Fatalf("net/http reads %q differently:\n net/http: %s %s host=%q cl=%d close=%v\n ours:     %s",
				head, req.Method, req.RequestURI, req.Host, req.ContentLength, req.Close, describe(&r))
		}
		if r.Chunked != (len(req.TransferEncoding) > 0) {
			t.Fatalf("chunked %v, net/http TE %q", r.Chunked, req.TransferEncoding)
		}
	})
}
