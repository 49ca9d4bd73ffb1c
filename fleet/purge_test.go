package fleet

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/accel-proxy/accel/internal/testproc"
)

// recorder is a local cache that records the purges it is given.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	return 1, nil
}
func (r *recorder) PurgeURL(u string, _ bool) (int, error)    { return r.add("url " + u) }
func (r *recorder) PurgePrefix(p string, _ bool) (int, error) { return r.add("prefix " + p) }
func (r *recorder) PurgeTags(t []string, _ bool) (int, error) { return r.add("tags") }
func (r *recorder) PurgeAll(bool) (int, error)                { return r.add("all") }

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// TestReplayAndTrim: an instance that comes back replays the entries after
// its saved id; one whose saved id the stream was trimmed past drops its
// whole cache instead.
func TestReplayAndTrim(t *testing.T) {
	rp := testproc.Redis(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: rp.Addr})
	defer rdb.Close()
	add := func(u string) string {
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: []string{"kind", "url", "arg", u, "soft", "0", "from", "other"}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := add("http://a/1")
	add("http://a/2")
	add("http://a/3")
	state := filepath.Join(t.TempDir(), "last")
	os.WriteFile(state, []byte(first+"\n"), 0o600)
	rec := &recorder{}
	p, err := Open(Config{Addr: rp.Addr, Stream: "s", StateFile: state}, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got := rec.list(); len(got) != 2 || got[0] != "url http://a/2" || got[1] != "url http://a/3" {
		t.Errorf("replayed %v, want a/2 and a/3", got)
	}

	// Trim everything after the saved id away.
	saved, _ := os.ReadFile(state)
	add("http://a/4")
	add("http://a/5")
	if err := rdb.XTrimMaxLen(ctx, "s", 1).Err(); err != nil {
		t.Fatal(err)
	}
	rec = &recorder{}
	p, err = Open(Config{Addr: rp.Addr, Stream: "s", StateFile: state}, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got := rec.list(); len(got) != 1 || got[0] != "all" {
		t.Errorf("after a trim past %s: %v, want the cache dropped", saved, got)
	}
}

// TestRedisDownRefusesStart: without the stream an instance cannot know
// what it missed, so it does not start.
func TestRedisDownRefusesStart(t *testing.T) {
	_, err := Open(Config{Addr: "127.0.0.1:1", Stream: "s", StateFile: filepath.Join(t.TempDir(), "last")}, &recorder{}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("started without Redis")
	}
}
