package upstream

import "testing"

func BenchmarkPick(b *testing.B) {
	for _, bal := range []string{RoundRobin, LeastConn} {
		b.Run(bal, func(b *testing.B) {
			p := pickPool(b, bal, 5, 3, 2, 1)
			defer p.Close()
			b.ReportAllocs()
			for b.Loop() {
				p.mu.Lock()
				l, _ := p.tryLeaseLocked(p.filter(0))
				l.srv.active--
				p.mu.Unlock()
			}
		})
	}
}
