package accel

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// statusText is net/http's reason phrase, or a neutral one for codes it
// does not know (RFC 9112 §4 lets the reason be anything).
func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	if code == 499 {
		return "Client Closed Request"
	}
	return "Status"
}

// statusLines are the HTTP/1.1 status lines of the codes 100 to 599, made
// once: a response head starts with one.
var statusLines = func() (t [500]string) {
	for i := range t {
		code := 100 + i
		t[i] = "HTTP/1.1 " + strconv.Itoa(code) + " " + statusText(code) + "\r\n"
	}
	return t
}()

// statusLine is the status line of code, CRLF included.
func statusLine(code int) string {
	if code >= 100 && code < 600 {
		return statusLines[code-100]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + statusText(code) + "\r\n"
}

// dateCache holds the formatted Date of the current second: formatting it
// per response would cost an allocation.
var dateCache atomic.Pointer[dateEntry]

type dateEntry struct {
	sec  int64
	text string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateEntry{sec: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

// copyBufs holds the buffers bodies are streamed through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
