package accel

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const metricsConfig = `
listen:
  - address: "127.0.0.1:0"
    tls:
      self_signed: true
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
`

// scrape reads /metrics into families.
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := adminDo(t, s, adminToken, "GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// series is one metric by name and labels ("k=v,k=v"); field picks the
// value: the counter, gauge or untyped value, or a histogram's count.
type series struct{ name, labels string }

func value(fams map[string]*dto.MetricFamily, sr series) (float64, bool) {
	want := map[string]string{}
	if sr.labels != "" {
		for _, kv := range strings.Split(sr.labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			want[k] = v
		}
	}
	f := fams[sr.name]
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsFromStart: every series the issue lists is exported before
// the first request, at 0 (build info and server up at 1), and each moves
// by exactly the traffic sent.
func TestMetricsFromStart(t *testing.T) {
	o := startCountingOrigin(t)
	s := startAccel(t, metricsConfig, o.addr())
	server := "pool=app,server=" + o.addr()
	start := map[series]float64{
		{"accel_requests_total", "proto=h1,status=2xx,cache=hit"}:   0,
		{"accel_requests_total", "proto=h1,status=2xx,cache=miss"}:  0,
		{"accel_requests_total", "proto=h2,status=2xx,cache=miss"}:  0,
		{"accel_requests_total", "proto=h2,status=5xx,cache=error"}: 0,
		{"accel_requests_total", "proto=h1,status=4xx,cache=pass"}:  0,
		{"accel_request_duration_seconds", "cache=hit"}:             0,
		{"accel_request_duration_seconds", "cache=miss"}:            0,
		{"accel_client_connections", "proto=h1"}:                    0,
		{"accel_client_connections", "proto=h2"}:                    0,
		{"accel_upstream_server_up", server}:                        1,
		{"accel_upstream_in_flight", server}:                        0,
		{"accel_upstream_queue_depth", "pool=app"}:                  0,
		{"accel_upstream_request_duration_seconds", server}:         0,
		{"accel_upstream_responses_total", server + ",class=2xx"}:   0,
		{"accel_upstream_responses_total", server + ",class=error"}: 0,
		{"accel_upstream_retries_total", server}:                    0,
		{"accel_upstream_ejections_total", server}:                  0,
		{"accel_tls_handshakes_total", "type=full"}:                 0,
		{"accel_tls_handshakes_total", "type=resumed"}:              0,
		{"accel_rejections_total", "reason=dup_host"}:               0,
		{"accel_rejections_total", "reason=tls_handshake"}:          0,
		{"accel_purges_total", "kind=url"}:                          0,
		{"accel_received_bytes_total", ""}:                          0,
		{"accel_sent_bytes_total", ""}:                              0,
		{"accel_build_info", ""}:                                    1,
	}
	fams := scrape(t, s)
	for sr, want := range start {
		got, ok := value(fams, sr)
		if !ok {
			t.Errorf("%s{%s} not exported at start", sr.name, sr.labels)
		} else if got != want {
			t.Errorf("%s{%s} = %v at start, want %v", sr.name, sr.labels, got, want)
		}
	}

	// Traffic: h1 cleartext miss, hit, hit; HTTP/2 over TLS one miss (one
	// full handshake); one request the parser refuses.
	h1, h2 := client(t, "h1"), client(t, "h2")
	get := func(c *http.Client, url string) {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for range 3 {
		get(h1, baseURL(s, "h1")+"/m/1")
	}
	get(h2, baseURL(s, "h2")+"/m/2")
	if ans := rawExchange(t, s.Addrs()[0].String(), "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"); !strings.HasPrefix(ans, "HTTP/1.1 400") {
		t.Fatalf("duplicate Host answered %q", ans)
	}
	after := map[series]float64{
		{"accel_requests_total", "proto=h1,status=2xx,cache=hit"}:  2,
		{"accel_requests_total", "proto=h1,status=2xx,cache=miss"}: 1,
		{"accel_requests_total", "proto=h2,status=2xx,cache=miss"}: 1,
		{"accel_request_duration_seconds", "cache=hit"}:            2,
		{"accel_request_duration_seconds", "cache=miss"}:           2,
		{"accel_upstream_server_up", server}:                       1,
		{"accel_upstream_in_flight", server}:                       0,
		{"accel_upstream_request_duration_seconds", server}:        2,
		{"accel_upstream_responses_total", server + ",class=2xx"}:  2,
		{"accel_tls_handshakes_total", "type=full"}:                1,
		{"accel_tls_handshakes_total", "type=resumed"}:             0,
		{"accel_rejections_total", "reason=dup_host"}:              1,
	}
	// A request is counted when its handler returns, which can be just
	// after the client read the whole response: wait for the last ones.
	total := func() float64 {
		var n float64
		for _, m := range fams["accel_requests_total"].GetMetric() {
			n += m.GetCounter().GetValue()
		}
		return n
	}
	waitUntil(t, "4 requests counted", func() bool { fams = scrape(t, s); return total() >= 4 })
	for sr, want := range after {
		if got, _ := value(fams, sr); got != want {
			t.Errorf("%s{%s} = %v after the traffic, want %v", sr.name, sr.labels, got, want)
		}
	}
	if n := total(); n != 4 {
		t.Errorf("accel_requests_total sums to %v, want 4 (the refused request is a rejection, not a request)", n)
	}

	// Open connections: the clients' keep-alive connections count until
	// they close.
	conns := func(proto string) float64 {
		v, _ := value(scrape(t, s), series{"accel_client_connections", "proto=" + proto})
		return v
	}
	// The refused request's connection closes after accel's lingering
	// close, on its own schedule.
	waitUntil(t, "h1=1 h2=1: each client's keep-alive connection", func() bool { return conns("h1") == 1 && conns("h2") == 1 })
	h1.Transport.(*http.Transport).CloseIdleConnections()
	h2.Transport.(*http.Transport).CloseIdleConnections()
	waitUntil(t, "connections gauges back to 0", func() bool { return conns("h1") == 0 && conns("h2") == 0 })
	c := dialAccel(t, s)
	c.Write([]byte("GET /m/1 HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := conns("h1"); n != 1 {
		t.Errorf("h1 connections with one open = %v", n)
	}
	c.Close()
	waitUntil(t, "h1 gauge back to 0 after close", func() bool { return conns("h1") == 0 })
}

// waitUntil polls cond (bounded: 10s) for state another goroutine changes
// after an event the test cannot observe directly, such as a connection
// closing on the server side.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDashboardSeries keeps docs/grafana-dashboard.json in step with the
// code: every accel_ series its queries use is exported from start.
func TestDashboardSeries(t *testing.T) {
	data, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	s := startAccel(t, metricsConfig, startCountingOrigin(t).addr())
	fams := scrape(t, s)
	names := regexp.MustCompile(`accel_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range names.FindAllString(tg.Expr, -1) {
				n++
				if fams[strings.TrimSuffix(name, "_bucket")] == nil {
					t.Errorf("dashboard query %q uses %s, which /metrics does not export", tg.Expr, name)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no accel_ series in the dashboard")
	}
}
