package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/accel-proxy/accel/internal/cfgerr"
	"github.com/redis/go-redis/v9"
)

// Purger is the local cache's purge API.
type Purger interface {
	PurgeURL(url string, soft bool) (int, error)
	PurgePrefix(prefix string, soft bool) (int, error)
	PurgeTags(tags []string, soft bool) (int, error)
	PurgeAll(soft bool) (int, error)
}

// Config is where the fleet's purge stream lives: the config file's fleet
// section. Zero fields take their defaults (Validate).
type Config struct {
	// Addr is the Redis server, host:port.
	Addr string
	// Stream is the stream's key; fleets sharing a Redis use their own.
	// Default "accel:purges".
	Stream string
	// MaxLen bounds the stream (approximately, XADD MAXLEN ~); an instance
	// down for longer than MaxLen purges drops its cache when it returns.
	// Default 100000.
	MaxLen int64
	// StateFile keeps the id of the last entry applied; empty for a
	// cache that does not outlive the process (nothing to replay).
	StateFile string
	// Timeout bounds each Redis call but the blocking read; default 2s.
	Timeout time.Duration
}

// Validate fills the zero fields with their defaults and checks the
// rest, naming the field as the config file's fleet section spells it (a
// *cfgerr.Error).
func (c *Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" || port == "" {
		return cfgerr.Errorf([]any{"redis"}, "%q is not host:port", c.Addr)
	}
	if c.MaxLen < 0 {
		return cfgerr.Errorf([]any{"stream_max_len"}, "is negative")
	}
	if c.Stream == "" {
		c.Stream = "accel:purges"
	}
	if c.MaxLen == 0 {
		c.MaxLen = 100000
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	return nil
}

// Purges applies purges locally and shares them with the fleet. It is a
// Purger itself: the admin API and the PURGE method call it instead of
// the cache.
type Purges struct {
	cfg   Config
	local Purger
	log   *slog.Logger
	rdb   *redis.Client
	// self marks this instance's own entries, which it applied already.
	self string

	// mu guards last, the id of the last entry applied, also in StateFile.
	mu   sync.Mutex
	last string

	stop context.CancelFunc
	done chan struct{}
}

// Open connects, replays what this instance missed since its last applied
// entry (or drops the local cache when the stream no longer holds that
// entry), and follows the stream from then on. It fails when Redis cannot
// be reached: serving before the replay could serve purged objects.
func Open(cfg Config, local Purger, log *slog.Logger) (*Purges, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	host, _ := os.Hostname()
	p := &Purges{
		cfg: cfg, local: local, log: log,
		rdb:  redis.NewClient(&redis.Options{Addr: cfg.Addr, DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, MaxRetries: -1}),
		self: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano()),
		done: make(chan struct{}),
	}
	if err := p.catchUp(); err != nil {
		p.rdb.Close()
		return nil, fmt.Errorf("fleet: purge stream %s on %s: %w", cfg.Stream, cfg.Addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	go p.follow(ctx)
	return p, nil
}

// Close stops following the stream.
func (p *Purges) Close() error {
	p.stop()
	<-p.done
	return p.rdb.Close()
}

func (p *Purges) catchUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*p.cfg.Timeout)
	defer cancel()
	var b []byte
	err := os.ErrNotExist
	if p.cfg.StateFile != "" {
		b, err = os.ReadFile(p.cfg.StateFile)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		// A new instance: what came before it is no purge of its cache.
		last, err := p.tail(ctx)
		if err != nil {
			return err
		}
		return p.save(last)
	case err != nil:
		return err
	}
	last := strings.TrimSpace(string(b))
	info, err := p.rdb.XInfoStream(ctx, p.cfg.Stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			if last == "0-0" {
				return p.save(last)
			}
			// The stream is gone (Redis lost it): entries may have been
			// lost, and the cache cannot tell which; drop it.
			return p.dropAll(last, "0-0")
		}
		return err
	}
	// Trimming removes the oldest entries first: while last itself is in
	// the stream nothing after it is gone. Once last is older than the
	// first entry, what followed it may have gone too, and the cache
	// cannot tell which objects to keep.
	trimmed := idLess(last, info.MaxDeletedEntryID)
	if last == "0-0" {
		trimmed = trimmed || info.EntriesAdded > info.Length
	} else if info.Length > 0 && idLess(last, info.FirstEntry.ID) {
		trimmed = true
	}
	if trimmed {
		return p.dropAll(last, info.LastGeneratedID)
	}
	for {
		msgs, err := p.rdb.XRangeN(ctx, p.cfg.Stream, "("+last, "+", 1000).Result()
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			p.apply(m)
		}
		last = msgs[len(msgs)-1].ID
		if err := p.save(last); err != nil {
			return err
		}
	}
}

// dropAll purges the whole local cache, for when entries were missed.
func (p *Purges) dropAll(last, next string) error {
	p.log.Warn("fleet: purges were missed (the stream was trimmed past this instance's last applied entry); dropping the local cache", "last_applied", last)
	if _, err := p.local.PurgeAll(false); err != nil {
		return err
	}
	return p.save(next)
}

// tail returns the id of the stream's last entry, "0-0" when empty.
func (p *Purges) tail(ctx context.Context) (string, error) {
	msgs, err := p.rdb.XRevRangeN(ctx, p.cfg.Stream, "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// follow reads new entries until ctx ends; a Redis outage is logged once
// and retried.
func (p *Purges) follow(ctx context.Context) {
	defer close(p.done)
	failing := false
	for ctx.Err() == nil {
		p.mu.Lock()
		last := p.last
		p.mu.Unlock()
		res, err := p.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{p.cfg.Stream, last}, Block: time.Second, Count: 1000}).Result()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				p.log.Error("fleet: reading the purge stream failed; retrying", "err", err)
				failing = true
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		failing = false
		for _, s := range res {
			for _, m := range s.Messages {
				p.apply(m)
			}
			if n := len(s.Messages); n > 0 {
				if err := p.save(s.Messages[n-1].ID); err != nil {
					p.log.Error("fleet: saving the last applied purge", "err", err)
				}
			}
		}
	}
}

// apply runs one entry of another instance on the local cache.
func (p *Purges) apply(m redis.XMessage) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	if str("from") == p.self {
		return
	}
	soft := str("soft") == "1"
	arg := str("arg")
	var err error
	switch str("kind") {
	case "url":
		_, err = p.local.PurgeURL(arg, soft)
	case "prefix":
		_, err = p.local.PurgePrefix(arg, soft)
	case "tags":
		_, err = p.local.PurgeTags(strings.Split(arg, ","), soft)
	case "all":
		_, err = p.local.PurgeAll(soft)
	default:
		err = fmt.Errorf("unknown purge kind %q", str("kind"))
	}
	if err != nil {
		p.log.Error("fleet: applying a purge from the stream", "id", m.ID, "err", err)
	}
}

// save records id as the last entry applied, in memory and on disk
// (written aside and renamed, so that a crash leaves one or the other).
func (p *Purges) save(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = id
	if p.cfg.StateFile == "" {
		return nil
	}
	tmp := p.cfg.StateFile + ".tmp"
	if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.cfg.StateFile)
}

// publish appends a purge applied here for the others.
func (p *Purges) publish(kind, arg string, soft bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	s := "0"
	if soft {
		s = "1"
	}
	err := p.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: p.cfg.Stream, MaxLen: p.cfg.MaxLen, Approx: true,
		Values: []string{"kind", kind, "arg", arg, "soft", s, "from", p.self},
	}).Err()
	if err != nil {
		return fmt.Errorf("applied on this instance, not sent to the fleet: %w", err)
	}
	return nil
}

func (p *Purges) PurgeURL(url string, soft bool) (int, error) {
	n, err := p.local.PurgeURL(url, soft)
	if err != nil {
		return n, err
	}
	return n, p.publish("url", url, soft)
}

func (p *Purges) PurgePrefix(prefix string, soft bool) (int, error) {
	n, err := p.local.PurgePrefix(prefix, soft)
	if err != nil {
		return n, err
	}
	return n, p.publish("prefix", prefix, soft)
}

func (p *Purges) PurgeTags(tags []string, soft bool) (int, error) {
	n, err := p.local.PurgeTags(tags, soft)
	if err != nil {
		return n, err
	}
	return n, p.publish("tags", strings.Join(tags, ","), soft)
}

func (p *Purges) PurgeAll(soft bool) (int, error) {
	n, err := p.local.PurgeAll(soft)
	if err != nil {
		return n, err
	}
	return n, p.publish("all", "", soft)
}

// idLess compares stream ids "ms-seq".
func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || am == bm && as < bs
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
