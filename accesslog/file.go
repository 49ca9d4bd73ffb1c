package accesslog

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// File is the access log's file: appended to, reopened on SIGUSR1
// (after an external logrotate renamed it, the nginx convention) and
// rotated by size when a maximum is set. Writes are whole lines under
// mu, so concurrent requests never interleave.
type File struct {
	path    string
	maxSize int64 // 0: never rotate by size
	keep    int   // rotated files kept: path.1 .. path.keep

	mu   sync.Mutex // guards the fields below
	f    *os.File
	size int64
	// users counts the Logs writing here (a reload that keeps the file
	// shares it between two config generations): the last one released
	// closes it, so a request still finishing under an old generation
	// logs its line.
	users int
}

// OpenFile opens (or creates) path for appending, rotated past maxSize
// bytes (0: never) with keep old files.
func OpenFile(path string, maxSize int64, keep int) (*File, error) {
	l := &File{path: path, maxSize: maxSize, keep: keep, users: 1}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("access log: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends one line, rotating first if it would pass maxSize. A
// failed rotation keeps writing to the current file: losing lines is
// worse than a large file.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxSize > 0 && l.size > 0 && l.size+int64(len(p)) > l.maxSize {
		l.rotateLocked()
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotateLocked shifts path.N-1 to path.N down to path to path.1, dropping
// the oldest, and opens a new path.
func (l *File) rotateLocked() {
	if l.keep == 0 {
		l.f.Truncate(0)
		l.size = 0
		return
	}
	for i := l.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return
	}
	old := l.f
	if err := l.open(); err != nil {
		l.f = old
		return
	}
	old.Close()
}

// Reopen closes the file and opens path again: after logrotate moved the
// file away, new lines go to a new file of the configured name.
func (l *File) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.f
	if err := l.open(); err != nil {
		return err
	}
	old.Close()
	return nil
}

// hold adds a Log writing here.
func (l *File) hold() {
	l.mu.Lock()
	l.users++
	l.mu.Unlock()
}

// release ends a Log's use; the last one closes the file.
func (l *File) release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users--; l.users > 0 {
		return nil
	}
	return l.f.Close()
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// lockedWriter serialises whole-line writes to a shared stream (stderr).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
