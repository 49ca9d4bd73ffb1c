package accel

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rangeOriginBody is what the range tests' origin serves: 100 000 bytes
// that differ from one offset to the next.
var rangeOriginBody = func() []byte {
	b := make([]byte, 100000)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}()

const rangeLastModified = "Mon, 02 Jan 2006 15:04:05 GMT"

// cacheTLSConfig is cacheConfig with TLS beside cleartext on the port.
var cacheTLSConfig = strings.Replace(cacheConfig, `  - address: "127.0.0.1:0"
`, `  - address: "127.0.0.1:0"
    tls:
      self_signed: true
`, 1)

func startRangeOrigin(t *testing.T) *httpOrigin {
	return startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			t.Errorf("the origin was sent Range %q", r.Header.Get("Range"))
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"r1"`)
		w.Header().Set("Last-Modified", rangeLastModified)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(rangeOriginBody)))
		w.Write(rangeOriginBody)
	})
}

// curlRange runs curl -r against accel and returns the status line's code,
// the head and the body it received.
func curlRange(t *testing.T, args ...string) (int, http.Header, []byte) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed: apt-get install curl")
	}
	dir := t.TempDir()
	hf, bf := filepath.Join(dir, "head"), filepath.Join(dir, "body")
	out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "10", "-D", hf, "-o", bf}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %q: %v\n%s", args, err, out)
	}
	head, _ := os.ReadFile(hf)
	body, _ := os.ReadFile(bf)
	status, rest, _ := strings.Cut(string(head), "\r\n")
	code, _ := strconv.Atoi(strings.Fields(status)[1])
	mh, err := textproto.NewReader(bufioReader(rest)).ReadMIMEHeader()
	if err != nil && err != io.EOF {
		t.Fatalf("head %q: %v", head, err)
	}
	return code, http.Header(mh), body
}

// checkRangeBody checks a 206 body against the origin's bytes: one part
// as Content-Range says, or every part of a multipart/byteranges.
func checkRangeBody(t *testing.T, h http.Header, body []byte, wantParts int) {
	t.Helper()
	check := func(cr string, got []byte) {
		var first, last, size int
		if _, err := fmtSscanf(cr, &first, &last, &size); err != nil || size != len(rangeOriginBody) {
			t.Fatalf("Content-Range %q", cr)
		}
		if !bytes.Equal(got, rangeOriginBody[first:last+1]) {
			t.Errorf("%s: %d bytes differ from the origin's", cr, len(got))
		}
	}
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		if wantParts != 1 {
			t.Fatalf("Content-Type %q, want %d parts", h.Get("Content-Type"), wantParts)
		}
		check(h.Get("Content-Range"), body)
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	n := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		check(p.Header.Get("Content-Range"), b)
		n++
	}
	if n != wantParts {
		t.Errorf("%d parts, want %d", n, wantParts)
	}
}

// Ranges through accel, with curl over HTTP/1.1 and HTTP/2 and with Go's
// HTTP/2 client: byte for byte the origin's, the origin asked once.
func TestRangesE2E(t *testing.T) {
	o := startRangeOrigin(t)
	s := startAccel(t, cacheTLSConfig, o.addr)
	addr := s.Addrs()[0].String()
	// The first request is a range on a miss: the whole object is fetched
	// and stored, the range answered.
	for _, proto := range []string{"--http1.1", "--http2-prior-knowledge"} {
		for _, tc := range []struct {
			rng   string
			parts int
		}{
			{"0-99", 1},
			{"-500", 1},
			{"99000-", 1},
			{"12345-67890", 1},
			{"0-9,5000-5099,-10", 3},
		} {
			t.Run(proto+" "+tc.rng, func(t *testing.T) {
				code, h, body := curlRange(t, proto, "-r", tc.rng, "http://"+addr+"/file")
				if code != 206 {
					t.Fatalf("status %d", code)
				}
				checkRangeBody(t, h, body, tc.parts)
			})
		}
	}
	t.Run("go h2", func(t *testing.T) {
		for _, rng := range []string{"bytes=10-20", "bytes=0-0,99999-"} {
			req, _ := http.NewRequest("GET", baseURL(s, "h2")+"/file", nil)
			req.Header.Set("Range", rng)
			resp, err := client(t, "h2").Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 206 || resp.ProtoMajor != 2 {
				t.Fatalf("%s: %s %d", rng, resp.Proto, resp.StatusCode)
			}
			checkRangeBody(t, resp.Header, body, strings.Count(rng, ",")+1)
		}
	})
	t.Run("416", func(t *testing.T) {
		for _, proto := range []string{"--http1.1", "--http2-prior-knowledge"} {
			code, h, body := curlRange(t, proto, "-r", "100000-", "http://"+addr+"/file")
			if code != 416 || h.Get("Content-Range") != "bytes */100000" || len(body) != 0 {
				t.Errorf("%s: %d %q %d bytes", proto, code, h.Get("Content-Range"), len(body))
			}
		}
	})
	t.Run("If-Range", func(t *testing.T) {
		for _, tc := range []struct {
			ifRange string
			code    int
		}{
			{`"r1"`, 206},
			{rangeLastModified, 206},
			{`"r0"`, 200},
			{"Mon, 02 Jan 2006 15:04:06 GMT", 200},
		} {
			for _, proto := range []string{"--http1.1", "--http2-prior-knowledge"} {
				code, h, body := curlRange(t, proto, "-r", "0-99", "-H", "If-Range: "+tc.ifRange, "http://"+addr+"/file")
				if code != tc.code {
					t.Fatalf("If-Range %s %s: %d, want %d", tc.ifRange, proto, code, tc.code)
				}
				if code == 200 && !bytes.Equal(body, rangeOriginBody) {
					t.Errorf("If-Range %s: the whole body differs", tc.ifRange)
				} else if code == 206 {
					checkRangeBody(t, h, body, 1)
				}
			}
		}
	})
	// Once per scheme: http and https URLs are distinct objects.
	if n := o.requests.Load(); n != 2 {
		t.Errorf("the origin was asked %d times, want twice", n)
	}
}

// A range request on a miss is answered while the origin still sends the
// rest of the body.
func TestRangeMissE2EStreams(t *testing.T) {
	release := make(chan struct{})
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(len(rangeOriginBody)))
		w.Write(rangeOriginBody[:1000])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		w.Write(rangeOriginBody[1000:])
	})
	s := startAccel(t, cacheConfig, o.addr)
	defer close(release)
	req, _ := http.NewRequest("GET", baseURL(s, "h1")+"/slow", nil)
	req.Header.Set("Range", "bytes=0-499")
	resp, err := client(t, "h1").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, rangeOriginBody[:500]) {
		t.Fatalf("%v %d %d bytes", err, resp.StatusCode, len(body))
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func fmtSscanf(cr string, first, last, size *int) (int, error) {
	return fmt.Sscanf(cr, "bytes %d-%d/%d", first, last, size)
}
