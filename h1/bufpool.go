package h1

import "sync"

// bufSize is the size of the read and write buffers a connection
// borrows: a request head of usual size, a small response whole.
const bufSize = 4096

// bufPool holds the buffers of connections that wait for a request. An
// idle keep-alive connection holds none (as nginx and fasthttp release
// theirs): 10 000 idle connections cost their goroutines and sockets, not
// 80 MB of buffers. sync.Pool drops what stays unused over two
// collections, so a burst of connections leaves no memory behind.
var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// getBuf borrows a buffer of bufSize bytes.
func getBuf() []byte { return bufPool.Get().(*[bufSize]byte)[:] }

// putBuf gives back a buffer from getBuf; one of another size (a read
// buffer grown for a large head) is left to the collector.
func putBuf(b []byte) {
	if cap(b) == bufSize {
		bufPool.Put((*[bufSize]byte)(b[:bufSize]))
	}
}
