package accel

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/accel-proxy/accel/parser"
)

// TestHeadBufsLifetime: the pooled buffers of a pass's heads go back only
// once serve ended and the body of the answer whose fields they hold is
// closed, in either order; a fetch after serve ended (a background
// refresh) does not take them.
func TestHeadBufsLifetime(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin", "answer to "+r.URL.Path)
		io.WriteString(w, "body")
	})
	// A refused connection fails the fetch at once.
	s := startAccel(t, strings.Replace(hitConfig, "  - name: app\n", "  - name: app\n    redial_window: 1ms\n", 1), o.addr)
	newPass := func() *pass {
		st := s.acquire()
		t.Cleanup(st.release)
		return &pass{s: s, st: st, route: st.cfg.Match("bench.example", "/"), bufs: getHeadBufs()}
	}
	head := func(path string) *parser.Request {
		return &parser.Request{Method: []byte("GET"), Target: []byte(path), Host: []byte("bench.example"), Major: 1, Minor: 1}
	}
	fetch := func(p *pass, path string) (io.Closer, parser.Fields) {
		t.Helper()
		resp, err := p.Fetch(context.Background(), head(path))
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.Fields.Get("x-origin"); string(v) != "answer to "+path {
			t.Fatalf("X-Origin %q", v)
		}
		return resp.Body, resp.Fields
	}
	inBufs := func(p *pass, fs parser.Fields) bool {
		return len(fs) > 0 && &fs[:1][0] == &p.bufs.outFields[0]
	}

	t.Run("body closed after serve ended", func(t *testing.T) {
		p := newPass()
		body, fs := fetch(p, "/a")
		if !inBufs(p, fs) {
			t.Fatal("the request's own fetch did not use the pass's buffers")
		}
		p.end()
		if n := p.bufs.refs.Load(); n != 1 {
			t.Fatalf("serve ended with the body open: %d references, want 1", n)
		}
		// A background refresh after serve ended has buffers of its own.
		later, lfs := fetch(p, "/b")
		if inBufs(p, lfs) {
			t.Fatal("a fetch after serve ended took the pass's buffers")
		}
		later.Close()
		if n := p.bufs.refs.Load(); n != 1 {
			t.Fatalf("another fetch's close changed the references: %d", n)
		}
		body.Close()
		body.Close() // a second close releases nothing more
		if n := p.bufs.refs.Load(); n != 0 {
			t.Fatalf("body closed: %d references, want 0", n)
		}
	})
	t.Run("body closed before serve ended", func(t *testing.T) {
		p := newPass()
		body, _ := fetch(p, "/c")
		body.Close()
		if n := p.bufs.refs.Load(); n != 1 {
			t.Fatalf("body closed while serve runs: %d references, want 1", n)
		}
		p.end()
		if n := p.bufs.refs.Load(); n != 0 {
			t.Fatalf("serve ended: %d references, want 0", n)
		}
	})
	t.Run("no fetch", func(t *testing.T) {
		p := newPass()
		p.end()
		if n := p.bufs.refs.Load(); n != 0 {
			t.Fatalf("serve ended without a fetch: %d references, want 0", n)
		}
	})
	t.Run("failed fetch", func(t *testing.T) {
		p := newPass()
		o.srv.Close()
		if _, err := p.Fetch(context.Background(), head("/d")); err == nil {
			t.Fatal("fetch from a closed origin succeeded")
		}
		p.end()
		if n := p.bufs.refs.Load(); n != 0 {
			t.Fatalf("serve ended after a failed fetch: %d references, want 0", n)
		}
	})
}
