package testproc

import (
	"bufio"
	"net"
	"testing"
)

// CannedOrigin answers every request head on every connection with reply,
// allocating nothing per request, so that a benchmark counts the
// allocations of what sits in front of it alone. Requests must have no
// body. It listens on 127.0.0.1 until the test ends.
func CannedOrigin(tb testing.TB, reply string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				out := []byte(reply)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 {
						if _, err := c.Write(out); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
