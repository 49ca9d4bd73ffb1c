package h2

import (
	"context"
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/accel-proxy/accel/parser"
)

// liveHeap is the heap in live objects after collections: two, so that
// sync.Pool's victim cache is emptied too.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// idleCost is the live heap per connection above before once the n
// connections went idle. A client reads its last answer before the
// server's loop gives its buffer back, so a few measures are taken
// (bounded) until it is under bound.
func idleCost(before int64, n int, bound int64) int64 {
	per := int64(0)
	for range 20 {
		if per = (liveHeap() - before) / int64(n); per < bound {
			break
		}
	}
	return per
}

// readBufSize is the size of readerPool's buffers.
const readBufSize = 16<<10 + 9

// idleClients opens n raw connections, their frame buffers shared.
func idleClients(t *testing.T, addr string, n int) []*rawClient {
	shared := make([]byte, 1<<20)
	cs := make([]*rawClient, n)
	for i := range cs {
		cs[i] = dialRaw(t, addr, encodings[0])
		cs[i].buf = shared
		t.Cleanup(func() { cs[i].c.Close() })
	}
	return cs
}

// TestIdleConnGivesBackReadBuffer: a connection with no stream at work
// waits for the next frame without its 16 KiB read buffer, and answers
// when it comes.
func TestIdleConnGivesBackReadBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what the heap holds")
	}
	const n = 200
	addr := serveLoopback(t, newStoredHit(), Config{})
	cs := idleClients(t, addr, n)
	before := liveHeap()
	for _, rc := range cs {
		rc.round(t, 2)
	}
	if per := idleCost(before, n, readBufSize); per >= readBufSize {
		t.Errorf("an idle connection holds %d bytes, want less than its %d-byte read buffer", per, readBufSize)
	}
	for _, rc := range cs {
		rc.round(t, 2)
	}
}

// waitingHit answers after release closes, from a stream goroutine.
type waitingHit struct {
	*storedHit
	inside  chan struct{}
	release chan struct{}
}

func (h waitingHit) ServeFast(*parser.Request, *Writer, *Conn) bool { return false }

func (h waitingHit) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c Conn) {
	h.inside <- struct{}{}
	<-h.release
	w.WriteStored(200, h.fields, nil, h.extra, h.body)
}

var _ Handler = waitingHit{}

// TestReadBufferBurstIsReturned is the degenerate case of the read buffer
// pool: connections that all have a stream at work at once hold a buffer
// each; once their streams ended and they are idle, the pool keeps none
// past two collections.
func TestReadBufferBurstIsReturned(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what the heap holds")
	}
	const n = 200
	h := waitingHit{storedHit: newStoredHit(), inside: make(chan struct{}), release: make(chan struct{})}
	addr := serveLoopback(t, h, Config{})
	cs := idleClients(t, addr, n)
	before := liveHeap()
	done := make(chan struct{})
	for _, rc := range cs {
		go func() {
			rc.round(t, 1)
			done <- struct{}{}
		}()
	}
	for range n {
		<-h.inside
	}
	if per := (liveHeap() - before) / n; per < readBufSize {
		t.Fatalf("a connection with a stream at work holds %d bytes, want its %d-byte read buffer or more: the test measures nothing", per, readBufSize)
	}
	close(h.release)
	for range n {
		<-done
	}
	if per := idleCost(before, n, readBufSize); per >= readBufSize {
		t.Errorf("after the burst each idle connection still costs %d bytes, want less than its %d-byte read buffer", per, readBufSize)
	}
}

var _ net.Conn = (*net.TCPConn)(nil)

// TestIdleConnGivesBackWriteBuffers: a connection that sent large bodies
// copied into its output buffers (from a stream's goroutine, as over TLS)
// waits idle without them, up to 2 × maxSpare, and answers when the next
// request comes.
func TestIdleConnGivesBackWriteBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what the heap holds")
	}
	const n = 50
	h := newStoredHit()
	h.body = make([]byte, 1<<20)
	release := make(chan struct{})
	close(release)
	addr := serveLoopback(t, waitingHit{storedHit: h, inside: make(chan struct{}, 4*n), release: release}, Config{})
	cs := idleClients(t, addr, n)
	before := liveHeap()
	for _, rc := range cs {
		rc.round(t, 1)
	}
	if per := idleCost(before, n, idleKeep); per >= idleKeep {
		t.Errorf("an idle connection holds %d bytes, want less than %d (its output buffers are up to %d each)", per, idleKeep, maxSpare)
	}
	for _, rc := range cs {
		rc.round(t, 1)
	}
}
