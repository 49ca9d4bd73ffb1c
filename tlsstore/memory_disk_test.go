package tlsstore

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accel-proxy/accel/internal/testfs"
)

// TestSessionDirectoryFull: the persisted memory backend on a small real
// filesystem that fills up: no panic, every handshake still resumes (from
// memory), one ERROR line; a restart on the full directory opens at once,
// in memory, with one ERROR line, and handshakes.
func TestSessionDirectoryFull(t *testing.T) {
	mnt := testfs.Mount(t, 16<<20)
	dir := filepath.Join(mnt, "sessions")
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	s, err := Open(Config{Dir: dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, "127.0.0.1", s)
	c := newClient(versions[1].v)
	c.mustDial(t, addr)
	if !c.mustDial(t, addr) {
		t.Fatal("no resumption before the disk filled")
	}
	testfs.Fill(t, mnt, 0)
	s.backend.(*memoryKV).checked.Store(0) // measure the room on the next write
	for i := range 20 {
		if !c.mustDial(t, addr) {
			t.Fatalf("reconnect %d on a full disk did not resume", i)
		}
	}
	if n := errorLines(t, &buf); n != 1 {
		t.Errorf("want one ERROR line, got %d:\n%s", n, buf.String())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	var buf2 syncBuffer
	s2, err := Open(Config{Dir: dir}, slog.New(slog.NewJSONHandler(&buf2, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	addr2 := serve(t, "127.0.0.2", s2)
	c2 := newClient(versions[0].v)
	c2.mustDial(t, addr2)
	if !c2.mustDial(t, addr2) {
		t.Error("no resumption after a restart on the full directory")
	}
	if n := errorLines(t, &buf2); n != 1 {
		t.Errorf("restart: want one ERROR line, got %d:\n%s", n, buf2.String())
	}
}

func errorLines(t *testing.T, buf *syncBuffer) int {
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if rec["level"] == "ERROR" {
			n++
		}
	}
	return n
}
