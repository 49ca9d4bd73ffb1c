package tlsstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// memoryMaxEntries bounds the in-process backend (about 300 bytes per
// session, so under 100 MB). Beyond it the least recently used sessions
// fall out of memory; with a Dir they are still found on disk.
const memoryMaxEntries = 1 << 18

// sweepInterval is how often expired entries are deleted from disk. Lookups
// already ignore them, so this only reclaims space.
const sweepInterval = 10 * time.Minute

// memoryKV is the single-instance backend: an LRU in memory, written
// through to pebble when persisted so that a restart keeps sessions and
// ticket keys. Calls never block on the network, so ctx is not consulted.
type memoryKV struct {
	mem *lru
	db  *pebble.DB // nil unless persisted

	addMu sync.Mutex // makes Add's check-then-set atomic across memory and disk

	stopSweep chan struct{}
	swept     chan struct{}
}

var _ kv = (*memoryKV)(nil)

// openMemory opens the memory backend, persisted in dir when it is set.
func openMemory(dir string, log *slog.Logger) (*memoryKV, error) {
	m := &memoryKV{mem: newLRU(memoryMaxEntries)}
	if dir == "" {
		return m, nil
	}
	// Sessions and ticket keys are secrets: the directory is the owner's
	// only, whatever the umask made of it.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsstore: session directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsstore: session directory %s: %w", dir, err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("tlsstore: opening session directory %s: %w", dir, err)
	}
	m.db = db
	m.stopSweep = make(chan struct{})
	m.swept = make(chan struct{})
	go m.sweepLoop()
	return m, nil
}

func (m *memoryKV) Get(_ context.Context, key string) ([]byte, error) {
	now := time.Now()
	if v, ok := m.mem.get(key, now); ok {
		return v, nil
	}
	if m.db == nil {
		return nil, errNotFound
	}
	raw, closer, err := m.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	expires, v, ok := decodeDiskValue(raw)
	if !ok || !now.Before(expires) {
		return nil, errNotFound
	}
	v = append([]byte(nil), v...) // raw is only valid until closer.Close
	m.mem.put(key, v, expires)
	return v, nil
}

func (m *memoryKV) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	expires := time.Now().Add(ttl)
	m.mem.put(key, value, expires)
	if m.db == nil {
		return nil
	}
	// NoSync: losing the last sessions in a machine crash costs only full
	// handshakes, while an fsync per handshake would cost every handshake.
	return m.db.Set([]byte(key), encodeDiskValue(expires, value), pebble.NoSync)
}

func (m *memoryKV) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	m.addMu.Lock()
	defer m.addMu.Unlock()
	switch _, err := m.Get(ctx, key); {
	case err == nil:
		return false, nil
	case !errors.Is(err, errNotFound):
		return false, err
	}
	return true, m.Set(ctx, key, value, ttl)
}

func (m *memoryKV) Close() error {
	if m.db == nil {
		return nil
	}
	close(m.stopSweep)
	<-m.swept
	return m.db.Close()
}

// sweepLoop deletes expired entries from disk, at start and then every
// sweepInterval, until Close.
func (m *memoryKV) sweepLoop() {
	defer close(m.swept)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		m.sweep(time.Now())
		select {
		case <-m.stopSweep:
			return
		case <-t.C:
		}
	}
}

func (m *memoryKV) sweep(now time.Time) {
	it, err := m.db.NewIter(nil)
	if err != nil {
		return
	}
	b := m.db.NewBatch()
	for it.First(); it.Valid(); it.Next() {
		if expires, _, ok := decodeDiskValue(it.Value()); !ok || !now.Before(expires) {
			_ = b.Delete(it.Key(), nil) // Delete copies the key
		}
	}
	_ = it.Close()
	_ = b.Commit(pebble.NoSync)
}

// On disk a value is prefixed with its expiry in Unix nanoseconds, since
// pebble has no TTL of its own.
func encodeDiskValue(expires time.Time, value []byte) []byte {
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(expires.UnixNano()))
	return append(b, value...)
}

func decodeDiskValue(raw []byte) (time.Time, []byte, bool) {
	if len(raw) < 8 {
		return time.Time{}, nil, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(raw))), raw[8:], true
}

// pebbleLogger sends pebble's messages to the store's logger: its routine
// chatter at debug level, its errors as errors.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called by pebble for corruption it cannot continue past; it
// must not return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic(msg)
}
