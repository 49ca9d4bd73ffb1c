package tlsstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/accel-proxy/accel/internal/diskfs"
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
//
// The disk is a convenience, never a condition: a directory that cannot
// open (or not within openWait) leaves the backend in memory, and once the
// filesystem is full, read-only or failing, writes stop (one ERROR line)
// while memory goes on serving. pebble's fatal errors park the goroutine
// that met them instead of stopping the process.
type memoryKV struct {
	mem *lru
	db  *pebble.DB // nil unless persisted
	dir string
	log *slog.Logger

	// noWrites is set once pebble met a write error: its log writer may
	// be broken, and another commit would be fatal. full is set while the
	// filesystem has no room; checked is when that was last measured.
	noWrites atomic.Bool
	dead     atomic.Bool
	full     atomic.Bool
	checked  atomic.Int64

	addMu sync.Mutex // makes Add's check-then-set atomic across memory and disk

	stopSweep chan struct{}
	swept     chan struct{}
}

var _ kv = (*memoryKV)(nil)

const (
	// openWait bounds pebble.Open: a directory that takes longer leaves
	// the sessions in memory.
	openWait = 700 * time.Millisecond
	// minRoom is the free space below which sessions stop going to disk:
	// a memtable's log and a flush of it.
	minRoom = 4 << 20
	// roomEvery is how often the free space is measured at most.
	roomEvery = time.Second
)

// openMemory opens the memory backend, persisted in dir when it is set.
func openMemory(dir string, log *slog.Logger) (*memoryKV, error) {
	m := &memoryKV{mem: newLRU(memoryMaxEntries), dir: dir, log: log}
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
	if err := m.room(); err != nil {
		log.Error("tlsstore: sessions kept in memory only until restart", "dir", dir, "err", err)
		return m, nil
	}
	opts := &pebble.Options{
		FS:     vfs.OnDiskFull(vfs.Default, func() { m.stopWrites(errors.New("no space left on device")) }),
		Logger: pebbleLogger{m},
		EventListener: &pebble.EventListener{BackgroundError: func(err error) {
			m.stopWrites(err)
		}},
		// Sessions are a few hundred bytes: small memtables and cache.
		MemTableSize: 1 << 20,
		CacheSize:    1 << 20,
	}
	db, err := diskfs.Open(dir, opts, openWait)
	if err != nil {
		if errors.Is(err, diskfs.ErrOpenTimeout) {
			// pebble may still open and write later: nothing of ours will.
			m.noWrites.Store(true)
			err = fmt.Errorf("opening took longer than %v", openWait)
		}
		log.Error("tlsstore: sessions kept in memory only until restart", "dir", dir, "err", err)
		return m, nil
	}
	m.db = db
	m.stopSweep = make(chan struct{})
	m.swept = make(chan struct{})
	go m.sweepLoop()
	return m, nil
}

// room checks that the directory's filesystem takes writes and has room.
func (m *memoryKV) room() error {
	free, readOnly, err := diskfs.Room(m.dir)
	if err != nil {
		return err
	}
	if readOnly {
		return errors.New("read-only filesystem")
	}
	if free < minRoom {
		return fmt.Errorf("filesystem full: %d bytes free", free)
	}
	return nil
}

// stopWrites stops writing after pebble met a write error; sessions go on
// in memory.
func (m *memoryKV) stopWrites(err error) {
	if !m.noWrites.Swap(true) {
		m.log.Error("tlsstore: session directory failed, new sessions kept in memory only until restart",
			"dir", m.dir, "err", err)
	}
}

// writable reports whether a write may go to pebble: it works, and the
// filesystem had room at the last measure (at most roomEvery old).
func (m *memoryKV) writable() bool {
	if m.db == nil || m.noWrites.Load() || m.dead.Load() {
		return false
	}
	now := time.Now().UnixNano()
	if last := m.checked.Load(); now-last >= int64(roomEvery) && m.checked.CompareAndSwap(last, now) {
		err := m.room()
		if err != nil && !m.full.Swap(true) {
			m.log.Error("tlsstore: session directory has no room, new sessions kept in memory", "dir", m.dir, "err", err)
		}
		if err == nil && m.full.Swap(false) {
			m.log.Info("tlsstore: session directory has room again", "dir", m.dir)
		}
	}
	return !m.full.Load()
}

func (m *memoryKV) Get(_ context.Context, key string) ([]byte, error) {
	now := time.Now()
	if v, ok := m.mem.get(key, now); ok {
		return v, nil
	}
	if m.db == nil || m.dead.Load() {
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
	if !m.writable() {
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
	if m.dead.Load() {
		return nil // pebble cannot close after a fatal error
	}
	err := m.db.Close()
	if err != nil && (m.full.Load() || m.noWrites.Load()) {
		// The failure was reported when writes stopped; closing a full
		// directory fails again (pebble ends its log with a write).
		m.log.Warn("tlsstore: closing the session directory", "dir", m.dir, "err", err)
		return nil
	}
	return err
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
	if !m.writable() {
		return
	}
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
// chatter at debug level, its errors as warnings. A fatal error (pebble
// requires Fatalf not to return) turns the disk off and parks the
// goroutine that met it: sessions go on in memory.
type pebbleLogger struct{ m *memoryKV }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.m.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.m.log.Warn("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	if !l.m.dead.Swap(true) {
		l.m.log.Error("tlsstore: session directory off until restart", "dir", l.m.dir,
			"err", fmt.Errorf("pebble: "+format, args...))
	}
	select {}
}
