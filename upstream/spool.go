package upstream

import (
	"os"
	"sync"
	"time"
)

// chunkSize is the unit of a spool's memory, taken from and given back to
// a pool shared by all responses.
const chunkSize = 16 << 10

type chunk struct {
	b [chunkSize]byte
	n int // bytes written; Pool.mu-free: guarded by its spool's mu
}

var chunks = sync.Pool{New: func() any { return new(chunk) }}

// fileBackoff is how long a pool keeps off its temp directory after a
// temp file could not be made or written (a full or read-only disk): the
// responses meanwhile buffer in memory only.
const fileBackoff = 10 * time.Second

// spool reads a response body at the origin's pace, into memory up to
// Config.BufferMemory and then into an unlinked temp file up to
// Config.BufferFile, the way nginx's proxy buffering does, so that the
// origin connection goes back to the pool when the origin finished, however
// slowly the client reads. Bytes are handed to the reader as soon as they
// arrive: a streamed response (events, long polls) is not held back. When
// both bounds are reached, or no temp file can be had, the pump waits for
// the reader: the response still completes, at the client's pace.
//
// The pump goroutine is the only reader of the origin body; the consumer
// reads through Read and Close. mu guards every field below cond.
type spool struct {
	c         *call
	memChunks int   // chunks of memory at most
	fileLimit int64 // temp file bytes at most; 0: none
	pool      *Pool

	mu     sync.Mutex
	cond   sync.Cond
	mem    []*chunk // unread bytes, oldest first; the last one is being filled
	r      int      // read offset in mem[0]
	file   *os.File
	fileW  int64 // bytes written to the file
	fileR  int64 // bytes of the file read
	noFile bool  // a temp file failed for this response
	done   bool  // the pump saw the end of the body, or failed
	err    error // io.EOF or the failure
	closed bool  // the consumer closed
	// readers counts the Reads under way, which Close waits out.
	readers int
	exited  chan struct{}
	// pending holds bytes read from the origin that a failed file write
	// could not take; they go to memory once the file is drained.
	pending []byte
	scratch *chunk
}

// startSpool begins pumping c's body. The Response's Body becomes the spool.
func (p *Pool) startSpool(c *call) {
	s := &c.spool
	s.c, s.pool = c, p
	s.memChunks = max(1, (p.cfg.BufferMemory+chunkSize-1)/chunkSize)
	s.fileLimit = max(0, p.cfg.BufferFile)
	if s.cond.L == nil {
		s.cond.L = &s.mu
	}
	s.exited = make(chan struct{})
	c.resp.Body = s
	go s.pump()
}

// reset empties s for the call's next use.
func (s *spool) reset() {
	for _, ch := range s.mem {
		ch.n = 0
		chunks.Put(ch)
	}
	clear(s.mem)
	s.mem = s.mem[:0]
	if s.scratch != nil {
		chunks.Put(s.scratch)
	}
	if s.file != nil {
		s.file.Close()
	}
	*s = spool{mem: s.mem, cond: sync.Cond{L: &s.mu}}
}

func (s *spool) pump() {
	defer close(s.exited)
	src := &s.c.body
	for {
		dst, toFile, ok := s.next()
		if !ok {
			return
		}
		n, err := src.Read(dst)
		if toFile && n > 0 {
			s.writeFile(dst[:n])
		} else {
			s.mu.Lock()
			s.mem[len(s.mem)-1].n += n
			s.mu.Unlock()
		}
		if err != nil {
			s.mu.Lock()
			s.done, s.err = true, err
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// next waits until there is room for more of the body and says where: the
// free end of the last memory chunk, or the scratch chunk bound for the
// file. It returns false once the consumer closed.
func (s *spool) next() (dst []byte, toFile bool, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return nil, false, false
		}
		if s.fileR == s.fileW {
			// The reader drained the file: start it over.
			s.fileR, s.fileW = 0, 0
			s.settlePendingLocked()
		}
		if s.pending == nil {
			// Bytes go to memory while the file holds nothing unread
			// (memory is older than the file), and to the file after.
			if s.fileW == 0 {
				if last := s.lastLocked(); last != nil && last.n < chunkSize {
					return last.b[last.n:], false, true
				}
				if len(s.mem) < s.memChunks {
					ch := chunks.Get().(*chunk)
					s.mem = append(s.mem, ch)
					return ch.b[:], false, true
				}
			}
			if s.fileUsableLocked() && s.fileW < s.fileLimit {
				if s.scratch == nil {
					s.scratch = chunks.Get().(*chunk)
				}
				room := min(int64(chunkSize), s.fileLimit-s.fileW)
				return s.scratch.b[:room], true, true
			}
		}
		s.cond.Wait()
	}
}

func (s *spool) lastLocked() *chunk {
	if len(s.mem) == 0 {
		return nil
	}
	return s.mem[len(s.mem)-1]
}

// settlePendingLocked moves the bytes a failed file write left over to
// memory once the file before them is read. After such a failure the pump
// never writes the file again, so either side may do it.
func (s *spool) settlePendingLocked() {
	if s.pending == nil || s.fileR < s.fileW {
		return
	}
	s.appendMemLocked(s.pending)
	s.pending = nil
	s.cond.Broadcast()
}

// appendMemLocked adds b to memory past the bound, which it exceeds by at
// most one chunk: only bytes a failed file write left over come this way.
func (s *spool) appendMemLocked(b []byte) {
	for len(b) > 0 {
		last := s.lastLocked()
		if last == nil || last.n == chunkSize {
			last = chunks.Get().(*chunk)
			s.mem = append(s.mem, last)
		}
		n := copy(last.b[last.n:], b)
		last.n += n
		b = b[n:]
	}
}

// fileUsableLocked makes the temp file on first use. A pool that failed to
// make or write one stays off its temp directory for fileBackoff.
func (s *spool) fileUsableLocked() bool {
	if s.fileLimit == 0 || s.noFile {
		return false
	}
	if s.file != nil {
		return true
	}
	if !s.pool.fileAllowed() {
		s.noFile = true
		return false
	}
	f, err := os.CreateTemp(s.pool.cfg.TempDir, "accel-body-")
	if err == nil {
		// Unlinked at once: nothing is left behind by a crash.
		err = os.Remove(f.Name())
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		s.noFile = true
		s.pool.fileFailed(err)
		return false
	}
	s.file = f
	return true
}

// writeFile appends b, read from the origin into the scratch chunk, to the
// file. On failure the bytes wait in pending for memory.
func (s *spool) writeFile(b []byte) {
	// Only the pump writes, at fileW and beyond, which the reader never
	// reads until fileW moves.
	s.mu.Lock()
	off := s.fileW
	s.mu.Unlock()
	_, err := s.file.WriteAt(b, off)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.noFile = true
		s.pending = append(s.pending[:0], b...)
		s.pool.fileFailed(err)
		return
	}
	s.fileW += int64(len(b))
}

// Read hands out what the origin sent, oldest first, waiting for more
// while the pump runs.
func (s *spool) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	s.readers++
	defer func() {
		s.readers--
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	for {
		if s.closed {
			return 0, errBodyClosed
		}
		s.settlePendingLocked()
		if n := s.readMemLocked(p); n > 0 {
			s.cond.Broadcast()
			return n, nil
		}
		if s.fileR < s.fileW {
			off, want := s.fileR, min(int64(len(p)), s.fileW-s.fileR)
			s.mu.Unlock()
			n, err := s.file.ReadAt(p[:want], off)
			s.mu.Lock()
			s.fileR += int64(n)
			s.cond.Broadcast()
			if err != nil && n == 0 {
				// The file lost bytes we wrote: the body is broken.
				s.done, s.err = true, &Error{Server: s.c.addr, Sent: true, Err: err}
				return 0, s.err
			}
			return n, nil
		}
		if s.done {
			return 0, s.err
		}
		s.cond.Wait()
	}
}

// readMemLocked copies into p what memory holds, across chunks, so that a
// reader with a large buffer gets it filled.
func (s *spool) readMemLocked(p []byte) int {
	n := 0
	for n < len(p) && len(s.mem) > 0 {
		ch := s.mem[0]
		m := copy(p[n:], ch.b[s.r:ch.n])
		s.r += m
		n += m
		if !s.dropReadLocked() {
			break
		}
	}
	return n
}

// dropReadLocked gives back the first memory chunk once it is read and
// full (the pump moved on), and reports whether it did.
func (s *spool) dropReadLocked() bool {
	ch := s.mem[0]
	if s.r < ch.n || ch.n < chunkSize && !(s.done || len(s.mem) > 1) {
		return false
	}
	s.mem = s.mem[1:]
	s.r = 0
	ch.n = 0
	chunks.Put(ch)
	return true
}

// Close stops the pump if it still runs (closing the origin connection,
// since the body did not end on it), and frees the buffers and the call.
func (s *spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	running := !s.done
	s.cond.Broadcast()
	for s.readers > 0 {
		// A Read on another goroutine is under way: it must be out
		// before the file closes and the call is reused.
		s.cond.Wait()
	}
	s.mu.Unlock()
	if running {
		s.c.interrupt()
	}
	<-s.exited
	c := s.c
	s.reset()
	return c.body.Close()
}

// fileAllowed reports whether a response may make a temp file now.
func (p *Pool) fileAllowed() bool {
	until := p.fileOffUntil.Load()
	return until == 0 || p.now().UnixNano() >= until
}

// fileFailed keeps the pool off its temp directory for a while and reports
// the first failure of each such while.
func (p *Pool) fileFailed(err error) {
	now := p.now().UnixNano()
	old := p.fileOffUntil.Load()
	if old != 0 && now < old {
		return
	}
	if !p.fileOffUntil.CompareAndSwap(old, now+int64(fileBackoff)) {
		return
	}
	p.fileErrors.Add(1)
	if p.cfg.OnBufferFileError != nil {
		p.cfg.OnBufferFileError(err)
	}
}
