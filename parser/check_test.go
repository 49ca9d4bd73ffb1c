package parser

import (
	"errors"
	"testing"
)

func TestCheckHead(t *testing.T) {
	ok := func() Request {
		return Request{Method: []byte("GET"), Target: []byte("/a?b=1"), Host: []byte("example.com:8080"),
			Fields: Fields{{Name: []byte("Accept"), Value: []byte("*/*")}}}
	}
	if r := ok(); CheckHead(&r) != nil {
		t.Fatalf("a good head refused: %v", CheckHead(&r))
	}
	for _, tc := range []struct {
		name   string
		change func(r *Request)
		want   error
	}{
		{"space in target", func(r *Request) { r.Target = []byte("/a b") }, ErrBadTarget},
		{"CRLF in target", func(r *Request) { r.Target = []byte("/a\r\nX: y") }, ErrBadTarget},
		{"non-ASCII target", func(r *Request) { r.Target = []byte("/\xc3\xa9") }, ErrBadTarget},
		{"bad escape", func(r *Request) { r.Target = []byte("/%zz") }, ErrBadTarget},
		{"empty target", func(r *Request) { r.Target = nil }, ErrBadTarget},
		{"bad method", func(r *Request) { r.Method = []byte("G T") }, ErrBadMethod},
		{"host with slash", func(r *Request) { r.Host = []byte("a/b") }, ErrBadHost},
		{"host with userinfo", func(r *Request) { r.Host = []byte("user@a") }, ErrBadHost},
		{"field name with space", func(r *Request) { r.Fields[0].Name = []byte("X A") }, ErrBadFieldName},
		{"NUL in value", func(r *Request) { r.Fields[0].Value = []byte("a\x00b") }, ErrCtl},
		{"LF in value", func(r *Request) { r.Fields[0].Value = []byte("a\nb") }, ErrCtl},
	} {
		r := ok()
		tc.change(&r)
		if err := CheckHead(&r); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
