package parser

import "testing"

func BenchmarkParseRequest(b *testing.B) {
	buf := []byte(typicalGET)
	r := Request{Fields: make(Fields, 0, 16)}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(buf, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	buf := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n" +
		"Content-Length: 5120\r\nCache-Control: public, max-age=300\r\n" +
		"ETag: \"5d8c72a5-1400\"\r\nDate: Mon, 23 Nov 2026 19:00:00 GMT\r\n\r\n")
	r := Response{Fields: make(Fields, 0, 16)}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(buf, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
