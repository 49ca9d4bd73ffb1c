package accel

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn is a raw HTTP/2 client over h2c prior knowledge, frame by frame.
type h2conn struct {
	t  *testing.T
	c  net.Conn
	fr *http2.Framer
}

func dialH2(t *testing.T, addr string) *h2conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &h2conn{t: t, c: c, fr: fr}
}

// serverSettings reads frames until the server's first SETTINGS.
func (h *h2conn) serverSettings() map[http2.SettingID]uint32 {
	h.t.Helper()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			out := map[http2.SettingID]uint32{}
			sf.ForeachSetting(func(s http2.Setting) error { out[s.ID] = s.Val; return nil })
			h.fr.WriteSettingsAck()
			return out
		}
	}
}

func (h *h2conn) request(streamID uint32, fields ...string) {
	h.t.Helper()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: streamID, BlockFragment: buf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		h.t.Fatal(err)
	}
}

// expectRefused reads frames until stream id is refused as RFC 9113 §8.1.1
// allows: reset with PROTOCOL_ERROR, or answered 400.
func (h *h2conn) expectRefused(id uint32) {
	h.t.Helper()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatal(err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == id {
			if rst.ErrCode != http2.ErrCodeProtocol {
				h.t.Errorf("reset with %v, want PROTOCOL_ERROR", rst.ErrCode)
			}
			return
		}
		if hf, ok := f.(*http2.MetaHeadersFrame); ok && hf.StreamID == id {
			if st := hf.PseudoValue("status"); st != "400" {
				h.t.Fatalf("answered %s, want 400", st)
			}
			return
		}
	}
}

// TestH2Settings: the HTTP/2 limits come from the config.
func TestH2Settings(t *testing.T) {
	o := startOrigin(t)
	cfg := strings.Replace(baseConfig, "      self_signed: true\n",
		"      self_signed: true\n    http2:\n      max_concurrent_streams: 17\n      max_frame_size: 32KiB\n      max_header_list_size: 20KiB\n", 1)
	s := startAccel(t, cfg, o.addr())
	got := dialH2(t, s.Addrs()[0].String()).serverSettings()
	for id, want := range map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 17,
		http2.SettingMaxFrameSize:         32 << 10,
	} {
		if got[id] != want {
			t.Errorf("%v = %d, want %d (all: %v)", id, got[id], want, got)
		}
	}
	// net/http announces the header list size with its own overhead
	// allowance added; what matters is that it follows the config.
	if v := got[http2.SettingMaxHeaderListSize]; v < 20<<10 || v > 24<<10 {
		t.Errorf("MAX_HEADER_LIST_SIZE = %d, want about 20KiB", v)
	}
}

// TestH2ConnectionSpecificRefused: an HTTP/2 request carrying a
// connection-specific field is malformed (RFC 9113 §8.2.2): the stream is
// reset and the origin sees nothing.
func TestH2ConnectionSpecificRefused(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	h := dialH2(t, s.Addrs()[0].String())
	h.serverSettings()
	h.request(1, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/x", "connection", "keep-alive")
	h.expectRefused(1)
	if n := o.requests.Load(); n != 0 {
		t.Errorf("origin received %d requests", n)
	}
}

// TestH2HopByHopResponse: fields the origin marks hop-by-hop never reach an
// HTTP/2 client (RFC 9113 §8.2.2 forbids them there).
func TestH2HopByHopResponse(t *testing.T) {
	o := startOrigin(t)
	o.handle = func(*http.Request, []byte) (int, http.Header, []byte) {
		return 200, http.Header{
			"Connection": {"X-Private"},
			"X-Private":  {"secret"},
			"Keep-Alive": {"timeout=5"},
			"Upgrade":    {"h2c"},
			"X-Public":   {"yes"},
		}, []byte("body")
	}
	s := startAccel(t, baseConfig, o.addr())
	h := dialH2(t, s.Addrs()[0].String())
	h.serverSettings()
	h.request(1, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/x")
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		hf, ok := f.(*http2.MetaHeadersFrame)
		if !ok || hf.StreamID != 1 {
			continue
		}
		names := map[string]string{}
		for _, f := range hf.Fields {
			names[f.Name] = f.Value
		}
		if names[":status"] != "200" || names["x-public"] != "yes" {
			t.Errorf("response fields %v", names)
		}
		for _, bad := range []string{"connection", "x-private", "keep-alive", "upgrade", "transfer-encoding"} {
			if _, ok := names[bad]; ok {
				t.Errorf("%s reached the HTTP/2 client", bad)
			}
		}
		return
	}
}

// TestH2BadPathRefused: an HTTP/2 :path that would not be one token on an
// HTTP/1.1 request line is refused, and the origin sees nothing.
func TestH2BadPathRefused(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	h := dialH2(t, s.Addrs()[0].String())
	h.serverSettings()
	h.request(1, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/a HTTP/1.1")
	h.expectRefused(1)
	if n := o.requests.Load(); n != 0 {
		t.Errorf("origin received %d requests", n)
	}
}
