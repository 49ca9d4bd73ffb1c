package parser

import (
	"sync/atomic"
	"time"
)

// IMFFixdate is the form of HTTP-date to generate (RFC 9110 §5.6.7).
const IMFFixdate = "Mon, 02 Jan 2006 15:04:05 GMT"

// dateCache holds the formatted Date of the current second: formatting it
// per response would cost an allocation.
var dateCache atomic.Pointer[dateEntry]

type dateEntry struct {
	sec  int64
	text string
}

// Date is the Date field value for now, made once a second for both
// fronts.
func Date() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateEntry{sec: now.Unix(), text: now.UTC().Format(IMFFixdate)}
	dateCache.Store(d)
	return d.text
}

// AppendFields appends fs in HTTP/1 wire form, one "Name: value\r\n" line
// per field, so that a head serialised once (a stored response's) is
// written by copying it.
func AppendFields(dst []byte, fs Fields) []byte {
	for _, f := range fs {
		dst = append(dst, f.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}
