package cache

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rangeBody is 1000 distinct-ish bytes, so an off-by-one shows.
var rangeBody = func() string {
	var b strings.Builder
	for i := 0; b.Len() < 1000; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(' ')
	}
	return b.String()[:1000]
}()

const lastMod = "Mon, 02 Jan 2006 15:04:05 GMT"

// rangeEnv stores rangeBody under /r, counting the origin's requests and
// recording the Range headers it saw.
func rangeEnv(t *testing.T) (*env, *methods) {
	seen := &methods{}
	e := newEnv(t, Config{}, nil)
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		seen.add(r.Header.Get("Range"))
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", lastMod)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, rangeBody)
	})
	return e, seen
}

// parts decodes a multipart/byteranges answer into Content-Range → bytes.
func parts(t *testing.T, r *recorder) map[string]string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q: %v", r.get("Content-Type"), err)
	}
	if int64(r.body.Len()) != r.length {
		t.Fatalf("Content-Length %d, body %d bytes", r.length, r.body.Len())
	}
	out := map[string]string{}
	mr := multipart.NewReader(bytes.NewReader(r.body.Bytes()), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("part Content-Type %q", p.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(p)
		out[p.Header.Get("Content-Range")] = string(b)
	}
}

func TestRangesFromStored(t *testing.T) {
	for _, tc := range []struct {
		name, rng string
		status    int
		cr        string // Content-Range of a single part
		body      string
		parts     map[string]string
	}{
		{name: "single", rng: "bytes=0-99", status: 206, cr: "bytes 0-99/1000", body: rangeBody[:100]},
		{name: "middle", rng: "bytes=500-509", status: 206, cr: "bytes 500-509/1000", body: rangeBody[500:510]},
		{name: "suffix", rng: "bytes=-10", status: 206, cr: "bytes 990-999/1000", body: rangeBody[990:]},
		{name: "suffix longer than body", rng: "bytes=-5000", status: 206, cr: "bytes 0-999/1000", body: rangeBody},
		{name: "open-ended", rng: "bytes=995-", status: 206, cr: "bytes 995-999/1000", body: rangeBody[995:]},
		{name: "last past the end", rng: "bytes=990-5000", status: 206, cr: "bytes 990-999/1000", body: rangeBody[990:]},
		{name: "multiple", rng: "bytes=0-9, 100-109,-5", status: 206, parts: map[string]string{
			"bytes 0-9/1000": rangeBody[:10], "bytes 100-109/1000": rangeBody[100:110], "bytes 995-999/1000": rangeBody[995:]}},
		{name: "overlapping merged", rng: "bytes=0-9,5-19,500-", status: 206, parts: map[string]string{
			"bytes 0-19/1000": rangeBody[:20], "bytes 500-999/1000": rangeBody[500:]}},
		{name: "one satisfiable of two", rng: "bytes=2000-3000,0-0", status: 206, cr: "bytes 0-0/1000", body: rangeBody[:1]},
		{name: "unsatisfiable", rng: "bytes=1000-", status: 416, cr: "bytes */1000"},
		{name: "zero suffix", rng: "bytes=-0", status: 416, cr: "bytes */1000"},
		{name: "other unit ignored", rng: "items=0-1", status: 200, body: rangeBody},
		{name: "invalid ignored", rng: "bytes=5-1", status: 200, body: rangeBody},
		{name: "junk ignored", rng: "bytes=0-1x", status: 200, body: rangeBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, seen := rangeEnv(t)
			e.get("/r")
			e.settle()
			r := e.get("/r", "Range", tc.rng)
			if r.status != tc.status || !hasStatus(r, "; hit") {
				t.Fatalf("status %d %q, want %d from the cache", r.status, r.get("Cache-Status"), tc.status)
			}
			if got := r.get("Content-Range"); got != tc.cr && tc.parts == nil {
				t.Errorf("Content-Range %q, want %q", got, tc.cr)
			}
			if tc.parts != nil {
				got := parts(t, r)
				if len(got) != len(tc.parts) {
					t.Errorf("%d parts, want %d", len(got), len(tc.parts))
				}
				for cr, b := range tc.parts {
					if got[cr] != b {
						t.Errorf("part %s: %q, want %q", cr, got[cr], b)
					}
				}
			} else if r.body.String() != tc.body || (tc.status != 416 && r.length != int64(len(tc.body))) {
				t.Errorf("body %q (length %d), want %q", r.body.String(), r.length, tc.body)
			}
			if len(seen.get()) != 1 {
				t.Errorf("origin saw %d requests", len(seen.get()))
			}
		})
	}
}

// RFC 9110 §13.1.5: If-Range with the strong ETag or the exact
// Last-Modified gets the range; anything else the whole response.
func TestIfRange(t *testing.T) {
	for _, tc := range []struct {
		ifRange string
		status  int
	}{
		{`"v1"`, 206},
		{`"v0"`, 200},
		{`W/"v1"`, 200},
		{lastMod, 206},
		{"Mon, 02 Jan 2006 15:04:06 GMT", 200},
		{"not a date", 200},
	} {
		e, _ := rangeEnv(t)
		e.get("/r")
		e.settle()
		r := e.get("/r", "Range", "bytes=0-9", "If-Range", tc.ifRange)
		if r.status != tc.status {
			t.Errorf("If-Range %s: %d, want %d", tc.ifRange, r.status, tc.status)
		}
		if tc.status == 200 && r.body.String() != rangeBody {
			t.Errorf("If-Range %s: not the whole body", tc.ifRange)
		}
	}
}

// A Range on a miss fetches the whole object once (the origin never sees
// the Range), answers the range, and stores the whole for the next.
func TestRangeMiss(t *testing.T) {
	e, seen := rangeEnv(t)
	r := e.get("/r", "Range", "bytes=10-19", "If-Range", `"v1"`)
	if r.status != 206 || r.body.String() != rangeBody[10:20] || r.get("Content-Range") != "bytes 10-19/1000" || !hasStatus(r, "stored") {
		t.Fatalf("miss: %d %q %q %q", r.status, r.body.String(), r.get("Content-Range"), r.get("Cache-Status"))
	}
	e.settle()
	if r := e.get("/r", "Range", "bytes=-3"); r.status != 206 || r.body.String() != rangeBody[997:] || !hasStatus(r, "; hit") {
		t.Fatalf("then: %d %q", r.status, r.body.String())
	}
	if r := e.get("/r"); r.status != 200 || r.body.String() != rangeBody {
		t.Fatalf("whole: %d", r.status)
	}
	if got := seen.get(); len(got) != 1 || got[0] != "" {
		t.Errorf("origin saw %q", got)
	}
}

// A range on a miss is answered as soon as its bytes arrive: the origin
// holds the rest of the body until the client has its range.
func TestRangeMissStreams(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	release := make(chan struct{})
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, rangeBody[:500])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, rangeBody[500:])
	})
	rec := newRecorder()
	done := make(chan error, 1)
	go func() {
		_, err := e.doTo(rec, "GET", "/s", "Range", "bytes=100-199")
		done <- err
	}()
	select {
	case <-rec.firstByte:
	case <-time.After(10 * time.Second):
		t.Fatal("the range did not arrive while the origin held the rest")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the range answer did not end while the origin held the rest")
	}
	close(release)
	if rec.status != 206 || rec.body.String() != rangeBody[100:200] {
		t.Errorf("%d %q", rec.status, rec.body.String())
	}
	e.settle()
}

// Coalesced range requests on one miss share one origin fetch, and each
// gets its range while the origin still holds the rest of the body.
func TestRangeMissCoalesced(t *testing.T) {
	e, seen := rangeEnv(t)
	gate := make(chan struct{})
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		seen.add(r.Header.Get("Range"))
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, rangeBody[:100])
		w.(http.Flusher).Flush()
		<-gate
		io.WriteString(w, rangeBody[100:])
	})
	const n = 5
	recs := make([]*recorder, n)
	done := make(chan error, n)
	for i := range n {
		recs[i] = newRecorder()
		go func() {
			_, err := e.doTo(recs[i], "GET", "/c", "Range", "bytes="+strconv.Itoa(i*10)+"-"+strconv.Itoa(i*10+9))
			done <- err
		}()
	}
	deadline := time.After(20 * time.Second)
	for i, r := range recs {
		select {
		case <-r.firstByte:
		case <-deadline:
			t.Fatalf("client %d got no bytes before the origin finished", i)
		}
	}
	close(gate)
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		if r.status != 206 || r.body.String() != rangeBody[i*10:i*10+10] {
			t.Errorf("request %d: %d %q", i, r.status, r.body.String())
		}
	}
	if len(seen.get()) != 1 {
		t.Errorf("origin saw %d requests", len(seen.get()))
	}
}

// A key whose whole response is too large to store passes Ranges to the
// origin; its 206 is stored and answers the ranges it covers.
func TestStored206(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	e.rules.MaxObjectSize = 500
	var seen methods
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		seen.add(r.Header.Get("Range"))
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(rangeBody))
	})
	// The first request learns the object is too large; it still gets
	// its range, cut from the whole body as it passes.
	if r := e.get("/big", "Range", "bytes=0-99"); r.status != 206 || r.body.String() != rangeBody[:100] {
		t.Fatalf("first: %d %q", r.status, r.body.String())
	}
	e.settle()
	if r := e.get("/big", "Range", "bytes=100-299"); r.status != 206 || r.body.String() != rangeBody[100:300] {
		t.Fatalf("second: %d %q", r.status, r.body.String())
	}
	for _, tc := range []struct {
		rng  string
		body string
		cr   string
	}{
		{"bytes=100-299", rangeBody[100:300], "bytes 100-299/1000"},
		{"bytes=150-159", rangeBody[150:160], "bytes 150-159/1000"},
	} {
		r := e.get("/big", "Range", tc.rng)
		if r.status != 206 || r.body.String() != tc.body || r.get("Content-Range") != tc.cr || !hasStatus(r, "; hit") {
			t.Errorf("%s: %d %q %q %q", tc.rng, r.status, r.body.String(), r.get("Content-Range"), r.get("Cache-Status"))
		}
	}
	if r := e.get("/big", "Range", "bytes=100-109,200-209"); r.status != 206 || !hasStatus(r, "; hit") {
		t.Errorf("multi within: %d %q", r.status, r.get("Cache-Status"))
	} else if p := parts(t, r); p["bytes 200-209/1000"] != rangeBody[200:210] {
		t.Errorf("parts %q", p)
	}
	n := len(seen.get())
	// Outside the stored part, and no Range: the origin again.
	if r := e.get("/big", "Range", "bytes=900-"); r.status != 206 || r.body.String() != rangeBody[900:] || hasStatus(r, "; hit") {
		t.Errorf("outside: %d %q", r.status, r.get("Cache-Status"))
	}
	if r := e.get("/big"); r.status != 200 || r.body.String() != rangeBody {
		t.Errorf("whole: %d", r.status)
	}
	if got := seen.get(); len(got) != n+2 || got[1] != "bytes=100-299" {
		t.Errorf("origin saw %q", got)
	}
}
