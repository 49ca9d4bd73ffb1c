package accel

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// earlyOrigin answers with a 103 Early Hints, then the page; uncached
// paths say private.
func earlyOrigin(t *testing.T) *httpOrigin {
	return startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "<html>page</html>")
	})
}

// curl -v shows the origin's 103 before the 200, over HTTP/1.1 and
// HTTP/2; the 103 is not stored: the hit that follows has none.
func TestOrigin103Forwarded(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed: apt-get install curl")
	}
	o := earlyOrigin(t)
	s := startAccel(t, cacheConfig, o.addr)
	addr := s.Addrs()[0].String()
	for _, tc := range []struct{ flag, proto string }{
		{"--http1.1", "HTTP/1.1"},
		{"--http2-prior-knowledge", "HTTP/2"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			url := "http://" + addr + "/p" + tc.flag
			out, err := exec.Command(curl, "-sv", "--max-time", "10", tc.flag, "-o", "/dev/null", url).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			v := string(out)
			i103 := strings.Index(v, "< "+tc.proto+" 103")
			i200 := strings.Index(v, "< "+tc.proto+" 200")
			if i103 < 0 || i200 < 0 || i103 > i200 {
				t.Fatalf("want the 103 before the 200:\n%s", v)
			}
			if !strings.Contains(strings.ToLower(v[i103:i200]), "< link: </style.css>; rel=preload; as=style") {
				t.Errorf("the 103 lacks the origin's Link:\n%s", v[i103:i200])
			}
			out, err = exec.Command(curl, "-sv", "--max-time", "10", tc.flag, "-o", "/dev/null", url).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if v := string(out); strings.Contains(v, " 103") || !strings.Contains(v, "hit") {
				t.Errorf("the hit after: a stored 103, or no hit:\n%s", v)
			}
		})
	}
}

// Go's HTTP/2 client sees the origin's 103 before the final response.
func TestOrigin103ForwardedGoH2(t *testing.T) {
	o := earlyOrigin(t)
	s := startAccel(t, cacheTLSConfig, o.addr)
	for _, mode := range []string{"h2", "h2c", "h1tls"} {
		var got []int
		var link string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, code)
			link = h.Get("Link")
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", baseURL(s, mode)+"/g"+mode, nil)
		resp, err := client(t, mode).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(got) != 1 || got[0] != 103 || link != "</style.css>; rel=preload; as=style" {
			t.Errorf("%s: %d after 1xx %v (Link %q)", mode, resp.StatusCode, got, link)
		}
	}
}

// A revalidation sends the stored version's preload Links as a 103 at
// once, while the origin is held: over HTTP/1.1 (raw bytes) and HTTP/2
// (Go's client).
func TestCache103BeforeSlowOrigin(t *testing.T) {
	hold := make(chan struct{})
	var first = make(chan struct{}, 1)
	first <- struct{}{}
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-first:
		default:
			// Revalidations wait until the client had its 103.
			select {
			case <-hold:
			case <-time.After(20 * time.Second):
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"p1"`)
		w.Header().Add("Link", "</app.js>; rel=preload; as=script")
		w.Header().Add("Link", "<https://cdn.example>; rel=preconnect")
		w.Header().Add("Link", "</next>; rel=next")
		if r.Header.Get("If-None-Match") == `"p1"` {
			w.WriteHeader(304)
			return
		}
		io.WriteString(w, "<html>page</html>")
	})
	s := startAccel(t, cacheTLSConfig, o.addr)
	if g := fetch(t, s, "GET", "/page"); g.status != 200 || !strings.Contains(g.header.Get("Cache-Status"), "stored") {
		t.Fatalf("first: %d %q", g.status, g.header.Get("Cache-Status"))
	}

	// HTTP/1.1: read the 103 off the socket before releasing the origin.
	c := dialAccel(t, s)
	io.WriteString(c, "GET /page HTTP/1.1\r\nHost: "+s.Addrs()[0].String()+"\r\n\r\n")
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil || line != "HTTP/1.1 103 Early Hints" {
		t.Fatalf("first line %q, %v", line, err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if links := h.Values("Link"); len(links) != 2 || links[0] != "</app.js>; rel=preload; as=script" || links[1] != "<https://cdn.example>; rel=preconnect" {
		t.Errorf("103 Links %q", links)
	}
	hold <- struct{}{}
	if line, _ := tp.ReadLine(); line != "HTTP/1.1 200 OK" {
		t.Errorf("then %q", line)
	}

	// HTTP/2: the 103 arrives while the origin is held.
	got103 := make(chan []string, 1)
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == 103 {
			got103 <- h.Values("Link")
		}
		return nil
	}}
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", baseURL(s, "h2c")+"/page", nil)
		resp, err := client(t, "h2c").Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case links := <-got103:
		if len(links) != 2 {
			t.Errorf("h2 103 Links %q", links)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no 103 while the origin was held")
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Every 1xx but 100 and 101 is forwarded, in order, to an HTTP/1.1
// client; an HTTP/1.0 client gets none (RFC 9110 §15.2).
func TestInterimHTTP1Versions(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusProcessing)
		w.Header().Set("Link", "</s.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Cache-Control", "private")
		io.WriteString(w, "done")
	})
	s := startAccel(t, cacheConfig, o.addr)
	host := s.Addrs()[0].String()
	for _, tc := range []struct {
		version string
		want    []string
	}{
		{"HTTP/1.1", []string{"HTTP/1.1 102 Processing", "HTTP/1.1 103 Early Hints", "HTTP/1.1 200 OK"}},
		{"HTTP/1.0", []string{"HTTP/1.1 200 OK"}},
	} {
		c := dialAccel(t, s)
		io.WriteString(c, "GET /i HTTP/"+tc.version[5:]+"\r\nHost: "+host+"\r\n\r\n")
		tp := textproto.NewReader(bufio.NewReader(c))
		var got []string
		for {
			line, err := tp.ReadLine()
			if err != nil {
				t.Fatalf("%s: %v after %q", tc.version, err, got)
			}
			got = append(got, line)
			if _, err := tp.ReadMIMEHeader(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(line, " 1") {
				break
			}
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: heads %q, want %q", tc.version, got, tc.want)
		}
	}
}
