package reqhead

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestHeadsSplitAndPipelined(t *testing.T) {
	in := "GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b?q=1 HTTP/1.1\r\n\r\n"
	r := New(iotest.OneByteReader(strings.NewReader(in)))
	want := []struct{ head, method, target string }{
		{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/a"},
		{"HEAD /b?q=1 HTTP/1.1\r\n\r\n", "HEAD", "/b?q=1"},
	}
	for _, w := range want {
		head, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		m, tg := Target(head)
		if string(head) != w.head || string(m) != w.method || string(tg) != w.target {
			t.Errorf("got %q (%q %q), want %q", head, m, tg, w.head)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last head: %v, want EOF", err)
	}
}

func TestBufferedSeesTheNextRequest(t *testing.T) {
	r := New(strings.NewReader("GET /a HTTP/1.1\r\n\r\nGET /b HT"))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if !r.Buffered() {
		t.Error("part of a second request read, Buffered is false")
	}
}

func TestTooLargeAndMalformed(t *testing.T) {
	r := New(strings.NewReader("GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n"))
	if _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("9 KB head: %v, want ErrTooLarge", err)
	}
	for _, line := range []string{"GET\r\n\r\n", " / HTTP/1.1\r\n\r\n", "GET /\r\n\r\n"} {
		if m, tg := Target([]byte(line)); m != nil || tg != nil {
			t.Errorf("Target(%q) = %q %q, want nil", line, m, tg)
		}
	}
}
