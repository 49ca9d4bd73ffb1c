package tlsstore

import "testing"

// The handshake benchmarks run real TLS over loopback TCP against the
// in-process store, one connection per iteration (connect, handshake, one
// read, close), and report handshakes per second; the difference between
// Full and Resumed is what a shared session store buys.

func BenchmarkHandshakeFull(b *testing.B) {
	for _, v := range versions {
		b.Run(v.name, func(b *testing.B) { benchHandshakes(b, v.v, false) })
	}
}

func BenchmarkHandshakeResumed(b *testing.B) {
	for _, v := range versions {
		b.Run(v.name, func(b *testing.B) { benchHandshakes(b, v.v, true) })
	}
}

func benchHandshakes(b *testing.B, v uint16, resume bool) {
	addr := serve(b, "127.0.0.1", openStore(b, Config{}))
	c := newClient(v)
	if resume {
		c.mustDial(b, addr)
	} else {
		c.cache = nil
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if got := c.mustDial(b, addr); got != resume {
			b.Fatalf("DidResume = %v, want %v", got, resume)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "handshakes/s")
}
