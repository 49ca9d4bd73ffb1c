package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accel-proxy/accel/admin"
)

const purgeTestToken = "purge-test-token-0123456789"

// recordingPurger stands in for the cache behind a real admin server: it
// records each call and answers with a fixed count.
type recordingPurger struct {
	mu    sync.Mutex
	calls []string
	n     int
	err   error
}

func (p *recordingPurger) record(call string, soft bool) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if soft {
		call += " soft"
	}
	p.calls = append(p.calls, call)
	return p.n, p.err
}

func (p *recordingPurger) PurgeURL(u string, soft bool) (int, error) {
	return p.record("url "+u, soft)
}

func (p *recordingPurger) PurgePrefix(prefix string, soft bool) (int, error) {
	return p.record("prefix "+prefix, soft)
}

func (p *recordingPurger) PurgeTags(tags []string, soft bool) (int, error) {
	return p.record("tags "+strings.Join(tags, ","), soft)
}

func (p *recordingPurger) PurgeAll(soft bool) (int, error) { return p.record("all", soft) }

func (p *recordingPurger) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

// startAdmin runs the real admin server on loopback with p behind it.
func startAdmin(t *testing.T, p admin.Purger) string {
	t.Helper()
	s, err := admin.New(admin.Config{Listen: "127.0.0.1:0", Token: purgeTestToken}, nil, admin.Options{Purger: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return "http://" + s.Addr().String()
}

func purge(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runPurge(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPurgeCommand(t *testing.T) {
	t.Setenv("ACCEL_PURGE_TEST_TOKEN", purgeTestToken)
	p := &recordingPurger{n: 3}
	base := startAdmin(t, p)
	flags := []string{"-admin", base, "-token-env", "ACCEL_PURGE_TEST_TOKEN", "-timeout", "10s"}
	tests := []struct {
		name      string
		args      []string
		wantOut   string
		wantCalls []string
	}{
		{"one url", []string{"url", "http://example.com/a?x=1"}, "3\n",
			[]string{"url http://example.com/a?x=1"}},
		{"two urls, counts summed", []string{"url", "http://example.com/a", "https://example.com/b"}, "6\n",
			[]string{"url http://example.com/a", "url https://example.com/b"}},
		{"prefix soft after kind", []string{"prefix", "-soft", "example.com/static/"}, "3\n",
			[]string{"prefix example.com/static/ soft"}},
		{"tags in one request", []string{"-soft", "tag", "t1", "t2"}, "3\n",
			[]string{"tags t1,t2 soft"}},
		{"all", []string{"all"}, "3\n", []string{"all"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := purge(append(slices.Clone(flags), tt.args...)...)
			if code != 0 || out != tt.wantOut {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, tt.wantOut)
			}
			if calls := p.take(); !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("purger calls %q, want %q", calls, tt.wantCalls)
			}
		})
	}

	// A bare host:port, as main's -admin flag takes it, works too.
	code, out, errOut := purge("-admin", strings.TrimPrefix(base, "http://"), "-token-env", "ACCEL_PURGE_TEST_TOKEN", "all")
	if code != 0 || out != "3\n" {
		t.Errorf("bare admin address: exit %d stdout %q stderr %q", code, out, errOut)
	}
	p.take()
}

func TestPurgeCommandErrors(t *testing.T) {
	t.Setenv("ACCEL_PURGE_TEST_TOKEN", purgeTestToken)
	t.Setenv("ACCEL_PURGE_TEST_WRONG", "wrong-token-0123456789abc")
	t.Setenv("ACCEL_PURGE_TEST_EMPTY", "")
	p := &recordingPurger{n: 1}
	base := startAdmin(t, p)

	// A port nobody listens on: take one and let it go.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"wrong token", []string{"-admin", base, "-token-env", "ACCEL_PURGE_TEST_WRONG", "all"}, 1, "401"},
		{"empty token", []string{"-admin", base, "-token-env", "ACCEL_PURGE_TEST_EMPTY", "all"}, 2, "$ACCEL_PURGE_TEST_EMPTY is empty"},
		{"unreachable", []string{"-admin", closed, "-token-env", "ACCEL_PURGE_TEST_TOKEN", "all"}, 1, "cannot reach the admin API"},
		{"bad url", []string{"-admin", base, "-token-env", "ACCEL_PURGE_TEST_TOKEN", "url", "/relative"}, 1, "400 Bad Request: url must start with a host"},
		{"no kind", []string{"-admin", base}, 2, "usage"},
		{"unknown kind", []string{"-admin", base, "everything"}, 2, `unknown kind "everything"`},
		{"url without argument", []string{"-admin", base, "url"}, 2, "url needs at least one argument"},
		{"all with argument", []string{"-admin", base, "all", "x"}, 2, "all takes no arguments"},
		{"bad flag", []string{"-nope", "all"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := purge(tt.args...)
			if code != tt.wantCode || out != "" || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
	if calls := p.take(); len(calls) != 0 {
		t.Errorf("purger called: %q", calls)
	}

	// A purge that fails half-way says how much was done before.
	failing := &failAfter{recordingPurger: &recordingPurger{n: 2}, ok: 1}
	base = startAdmin(t, failing)
	code, out, errOut := purge("-admin", base, "-token-env", "ACCEL_PURGE_TEST_TOKEN", "url", "http://a/1", "http://a/2")
	if code != 1 || out != "" || !strings.Contains(errOut, "disk full") || !strings.Contains(errOut, "2 objects were purged before the error") {
		t.Errorf("half-way failure: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	if code, _, errOut := purge("-h"); code != 0 || !strings.Contains(errOut, "usage: accel purge") {
		t.Errorf("-h: exit %d, stderr %q", code, errOut)
	}
}

// failAfter lets ok URL purges through and fails the rest.
type failAfter struct {
	*recordingPurger
	mu sync.Mutex
	ok int
}

func (f *failAfter) PurgeURL(u string, soft bool) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ok == 0 {
		return 0, errors.New("disk full")
	}
	f.ok--
	return f.recordingPurger.PurgeURL(u, soft)
}
