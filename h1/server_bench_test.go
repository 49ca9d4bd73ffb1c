package h1

import (
	"bytes"
	"testing"
)

// BenchmarkServeFast measures a 1 KiB answer from ServeFast through the
// connection loop, client included; allocs/op is the loop's (0).
func BenchmarkServeFast(b *testing.B) { benchFast(b, "/fast") }

// BenchmarkServeFastLarge is BenchmarkServeFast with a 64 KiB body, which
// leaves with its head in one vectored write.
func BenchmarkServeFastLarge(b *testing.B) { benchFast(b, "/large") }

func benchFast(b *testing.B, path string) {
	addr := start(b, &handler{})
	c := dial(b, addr)
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: a.example\r\nUser-Agent: bench\r\n\r\n")
	body := storedBody
	if path == "/large" {
		body = largeBody
	}
	buf := make([]byte, 80<<10)
	do := func() {
		c.Write(req)
		n := 0
		for !bytes.HasSuffix(buf[:n], body) {
			m, err := c.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
	}
	do()
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}
