package cache

import (
	"net/http"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// hintRecorder signals the first interim head.
type hintRecorder struct {
	*recorder
	got chan parser.Fields
}

func (h *hintRecorder) WriteInterim(status int, fs parser.Fields) error {
	h.recorder.WriteInterim(status, fs)
	if status == 103 {
		h.got <- fs.Clone()
	}
	return nil
}

// On a revalidation the stored version's preload and preconnect Links go
// out as a 103 before the origin answers (the origin is held until the
// test saw it); other Links, and non-HTML responses by default, do not.
func TestEarlyHintsFromStored(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, mode string
		want              int // Link fields in the 103; -1: no 103
	}{
		{"html", "text/html; charset=utf-8", "", 2},
		{"json by default", "application/json", "", -1},
		{"json with all", "application/json", "all", 2},
		{"html off", "text/html", "off", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hold := make(chan struct{})
			e := newEnv(t, Config{}, nil)
			e.rules.EarlyHints = tc.mode
			e.o.set(func(w http.ResponseWriter, r *http.Request) {
				revalidation := r.Header.Get("If-None-Match") != ""
				if revalidation {
					<-hold
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set("ETag", `"e"`)
				w.Header().Add("Link", "</a.js>; rel=preload; as=script")
				w.Header().Add("Link", `<https://cdn.example>; rel="dns-prefetch preconnect"`)
				w.Header().Add("Link", "</next>; rel=next, </x;rel=preload>; rel=prev")
				if revalidation {
					w.WriteHeader(304)
					return
				}
				w.Write([]byte("page"))
			})
			e.get("/e")
			e.settle()
			e.clk.advance(20 * time.Second)
			rec := &hintRecorder{recorder: newRecorder(), got: make(chan parser.Fields, 1)}
			done := make(chan error, 1)
			go func() {
				h := &parser.Request{Method: []byte("GET"), Target: []byte("/e"), Host: []byte("example.com"), Major: 1, Minor: 1}
				_, err := e.c.Serve(t.Context(), &Request{Scheme: "http", Head: h}, &e.rules, e.fetch, rec)
				done <- err
			}()
			if tc.want >= 0 {
				select {
				case fs := <-rec.got:
					if n := len(fs); n != tc.want {
						t.Errorf("103 with %d Links: %q", n, fs)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no 103 while the origin was held")
				}
			}
			close(hold)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if tc.want < 0 && len(rec.interim) > 0 {
				t.Errorf("unexpected 103: %v", rec.interim)
			}
			if rec.status != 200 || !hasStatus(rec.recorder, "fwd-status=304") {
				t.Errorf("final %d %q", rec.status, rec.get("Cache-Status"))
			}
		})
	}
}

// A miss of a URL whose other variant is stored sends that variant's
// Links while the origin makes the new one; a HEAD, and a URL never
// stored, get none.
func TestEarlyHintsOnVaryMiss(t *testing.T) {
	hold := make(chan struct{})
	e := newEnv(t, Config{}, nil)
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Language") == "de" {
			<-hold
		}
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Link", "</a.css>; rel=preload; as=style")
		w.Write([]byte("page"))
	})
	if r := e.get("/v", "Accept-Language", "en"); len(r.interim) != 0 {
		t.Errorf("a 103 for a URL never stored: %v", r.interim)
	}
	e.settle()
	rec := &hintRecorder{recorder: newRecorder(), got: make(chan parser.Fields, 1)}
	done := make(chan error, 1)
	go func() {
		h := &parser.Request{Method: []byte("GET"), Target: []byte("/v"), Host: []byte("example.com"), Major: 1, Minor: 1,
			Fields: parser.Fields{}.Add("Accept-Language", "de")}
		_, err := e.c.Serve(t.Context(), &Request{Scheme: "http", Head: h}, &e.rules, e.fetch, rec)
		done <- err
	}()
	select {
	case fs := <-rec.got:
		if len(fs) != 1 || string(fs[0].Value) != "</a.css>; rel=preload; as=style" {
			t.Errorf("103 %q", fs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no 103 while the origin made the new variant")
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rec.status != 200 || !hasStatus(rec.recorder, "fwd=vary-miss") {
		t.Errorf("final %d %q", rec.status, rec.get("Cache-Status"))
	}
	if r, _, _ := e.do("HEAD", "/v", "Accept-Language", "fr"); len(r.interim) != 0 {
		t.Errorf("a 103 for a HEAD: %v", r.interim)
	}
}
