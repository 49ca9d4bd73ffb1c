package h1

import (
	"bytes"
	"testing"
)

// BenchmarkServeFast measures a 1 KiB answer from ServeFast through the
// connection loop, client included; allocs/op is the loop's (0).
func BenchmarkServeFast(b *testing.B) {
	addr := start(b, &handler{})
	c := dial(b, addr)
	req := []byte("GET /fast HTTP/1.1\r\nHost: a.example\r\nUser-Agent: bench\r\n\r\n")
	buf := make([]byte, 8<<10)
	do := func() {
		c.Write(req)
		n := 0
		for !bytes.HasSuffix(buf[:n], storedBody) {
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
