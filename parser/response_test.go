package parser

import (
	"errors"
	"testing"
)

func TestParseResponseRejects(t *testing.T) {
	for _, c := range loadRejects(t, "testdata/reject-responses.txt") {
		var r Response
		_, err := ParseResponse([]byte(c.input), &r, Limits{})
		if !errors.Is(err, c.want) {
			t.Errorf("line %d: ParseResponse(%q) = %v; want %v", c.line, c.input, err, c.want)
			continue
		}
		if got := Status(err); got != c.status {
			t.Errorf("line %d: Status = %d, want %d", c.line, got, c.status)
		}
	}
}

func TestParseResponseAccepts(t *testing.T) {
	tests := []struct {
		name, in string
		want     Response
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 200, Reason: []byte("OK"), ContentLength: 12}},
		{"identical content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 200, Reason: []byte("OK"), ContentLength: 3}},
		{"chunked", "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 404, Reason: []byte("Not Found"), ContentLength: -1, Chunked: true}},
		{"chunked last after another coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 200, Reason: []byte("OK"), ContentLength: -1, Chunked: true}},
		{"coding without chunked reads until close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 200, Reason: []byte("OK"), ContentLength: -1, Close: true}},
		{"no framing: until close, caller decides", "HTTP/1.1 204 No Content\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 204, Reason: []byte("No Content"), ContentLength: -1}},
		{"empty reason with SP", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 200, Reason: []byte{}, ContentLength: 0}},
		{"empty reason without SP", "HTTP/1.1 999\r\nContent-Length: 0\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 999, Reason: []byte{}, ContentLength: 0}},
		{"reason with HTAB and obs-text", "HTTP/1.1 100 Go\ton \xff\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 100, Reason: []byte("Go\ton \xff"), ContentLength: -1}},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
			Response{Major: 1, Minor: 1, Status: 200, Reason: []byte("OK"), ContentLength: 1, Close: true}},
		{"HTTP/1.0 closes unless keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
			Response{Major: 1, Minor: 0, Status: 200, Reason: []byte("OK"), ContentLength: 1, Close: true}},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
			Response{Major: 1, Minor: 0, Status: 200, Reason: []byte("OK"), ContentLength: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Response
			n, err := ParseResponse([]byte(tt.in+"body"), &r, Limits{})
			if err != nil || n != len(tt.in) {
				t.Fatalf("ParseResponse = %d, %v; want %d, nil", n, err, len(tt.in))
			}
			w := tt.want
			if r.Major != w.Major || r.Minor != w.Minor || r.Status != w.Status ||
				string(r.Reason) != string(w.Reason) || r.ContentLength != w.ContentLength ||
				r.Chunked != w.Chunked || r.Close != w.Close {
				t.Errorf("got %d.%d %d %q cl=%d chunked=%v close=%v", r.Major, r.Minor, r.Status, r.Reason, r.ContentLength, r.Chunked, r.Close)
			}
			for k := range len(tt.in) {
				if _, err := ParseResponse([]byte(tt.in[:k]), &r, Limits{}); err != ErrIncomplete {
					t.Fatalf("prefix %q: %v, want ErrIncomplete", tt.in[:k], err)
				}
			}
		})
	}
}

func TestParseResponseLimits(t *testing.T) {
	var r Response
	in := "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"
	if _, err := ParseResponse([]byte(in), &r, Limits{MaxFields: 1}); err != ErrTooManyFields {
		t.Errorf("fields: %v, want ErrTooManyFields", err)
	}
	if _, err := ParseResponse([]byte(in[:20]), &r, Limits{MaxHeadBytes: 20}); err != ErrHeadTooLarge {
		t.Errorf("head: %v, want ErrHeadTooLarge", err)
	}
	if _, err := ParseResponse([]byte(in), &r, Limits{MaxHeadBytes: len(in)}); err != nil {
		t.Errorf("head at the limit: %v", err)
	}
}
