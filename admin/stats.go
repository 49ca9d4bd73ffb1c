package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

func (s *Server) metrics() http.HandlerFunc {
	h := promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	})
	return h.ServeHTTP
}

// statsAnswer is GET /stats. It is read from the same registry as
// /metrics, so the two never disagree.
type statsAnswer struct {
	UptimeSeconds float64 `json:"uptime_seconds"`
	Requests      struct {
		Total         uint64                       `json:"total"`
		ByProtocol    map[string]map[string]uint64 `json:"by_protocol"`
		ByCacheStatus map[string]uint64            `json:"by_cache_status"`
	} `json:"requests"`
	// HitRatio is (hit + stale) / (hit + stale + miss): the share of
	// cache lookups answered from the cache. Passes, bypasses and errors
	// never looked the cache up, so they do not count. Null before the
	// first lookup.
	HitRatio *float64 `json:"hit_ratio"`
	Bytes    struct {
		In  uint64 `json:"in"`
		Out uint64 `json:"out"`
	} `json:"bytes"`
	Upstream   map[string]map[string]*upstreamStats `json:"upstream"`
	QueueDepth map[string]int                       `json:"queue_depth"`
	TLS        struct {
		HandshakesFull     uint64 `json:"handshakes_full"`
		HandshakesResumed  uint64 `json:"handshakes_resumed"`
		SessionStoreErrors uint64 `json:"session_store_errors"`
	} `json:"tls"`
	Rejections map[string]uint64 `json:"rejections"`
	Purges     map[string]uint64 `json:"purges"`
	Cache      *CacheStats       `json:"cache,omitempty"`
	// ByStatus counts requests by status class (2xx, ...).
	ByStatus map[string]uint64 `json:"by_status"`
	// Servers is each pool's servers: up, in flight.
	Servers map[string][]ServerState `json:"servers"`
	// TopHosts and TopPaths are the most requested since start
	// (approximate counts past the 64 hosts and 256 paths tracked).
	TopHosts     []TopEntry    `json:"top_hosts"`
	TopPaths     []TopEntry    `json:"top_paths"`
	RecentErrors []RecentError `json:"recent_errors"`
}

// upstreamStats is one origin server, under its pool.
type upstreamStats struct {
	Tries              uint64            `json:"tries"`
	Responses          map[string]uint64 `json:"responses"` // by status class, and "error"
	MeanLatencySeconds float64           `json:"mean_latency_seconds"`
	Retries            uint64            `json:"retries"`
	Ejections          uint64            `json:"ejections"`
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.m.snapshot()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "gathering metrics: "+err.Error())
		return
	}
	if s.opts.Stats == nil {
		writeJSON(w, http.StatusOK, st)
		return
	}
	// Merging goes through JSON objects so that the extras can be any
	// type that encodes to one.
	out := map[string]json.RawMessage{}
	if err := roundTrip(st, &out); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	extra := map[string]json.RawMessage{}
	if err := roundTrip(s.opts.Stats(), &extra); err != nil {
		writeError(w, http.StatusInternalServerError, "extra stats are not a JSON object: "+err.Error())
		return
	}
	// Built-in keys win: the documented shape stays the same whatever
	// the extras hold.
	for k, v := range extra {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func roundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// snapshot reads the registry into a statsAnswer.
func (m *Metrics) snapshot() (*statsAnswer, error) {
	fams, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	st := &statsAnswer{
		UptimeSeconds: time.Since(m.started).Seconds(),
		Upstream:      map[string]map[string]*upstreamStats{},
		QueueDepth:    map[string]int{},
		Rejections:    map[string]uint64{},
		Purges:        map[string]uint64{},
	}
	st.Requests.ByProtocol = map[string]map[string]uint64{}
	st.ByStatus = map[string]uint64{}
	st.Servers = m.servers.states()
	st.TopHosts, st.TopPaths = m.topTargets(10)
	st.RecentErrors = m.errors.list()
	st.Requests.ByCacheStatus = map[string]uint64{}
	server := func(lp labels) *upstreamStats {
		pool, name := lp["pool"], lp["server"]
		if st.Upstream[pool] == nil {
			st.Upstream[pool] = map[string]*upstreamStats{}
		}
		u := st.Upstream[pool][name]
		if u == nil {
			u = &upstreamStats{Responses: map[string]uint64{}}
			st.Upstream[pool][name] = u
		}
		return u
	}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			lp := labelsOf(mt)
			c := uint64(mt.GetCounter().GetValue())
			switch f.GetName() {
			case "accel_requests_total":
				if st.Requests.ByProtocol[lp["proto"]] == nil {
					st.Requests.ByProtocol[lp["proto"]] = map[string]uint64{}
				}
				st.Requests.ByProtocol[lp["proto"]][lp["cache"]] += c
				st.Requests.ByCacheStatus[lp["cache"]] += c
				st.ByStatus[lp["status"]] += c
				st.Requests.Total += c
			case "accel_received_bytes_total":
				st.Bytes.In = c
			case "accel_sent_bytes_total":
				st.Bytes.Out = c
			case "accel_tls_handshakes_total":
				if lp["type"] == "resumed" {
					st.TLS.HandshakesResumed = c
				} else {
					st.TLS.HandshakesFull = c
				}
			case "accel_tls_session_store_errors_total":
				st.TLS.SessionStoreErrors = c
			case "accel_rejections_total":
				st.Rejections[lp["reason"]] = c
			case "accel_purges_total":
				st.Purges[lp["kind"]] = c
			case "accel_upstream_request_duration_seconds":
				u, h := server(lp), mt.GetHistogram()
				u.Tries = h.GetSampleCount()
				if u.Tries > 0 {
					u.MeanLatencySeconds = h.GetSampleSum() / float64(u.Tries)
				}
			case "accel_upstream_responses_total":
				server(lp).Responses[lp["class"]] = c
			case "accel_upstream_retries_total":
				server(lp).Retries = c
			case "accel_upstream_ejections_total":
				server(lp).Ejections = c
			case "accel_upstream_queue_depth":
				st.QueueDepth[lp["pool"]] = int(mt.GetGauge().GetValue())
			}
		}
	}
	bc := st.Requests.ByCacheStatus
	// A revalidated response was looked up but needed the origin's 304.
	if lookups := bc["hit"] + bc["stale"] + bc["revalidated"] + bc["miss"]; lookups > 0 {
		r := float64(bc["hit"]+bc["stale"]) / float64(lookups)
		st.HitRatio = &r
	}
	if cs, ok := m.cache.snapshot(); ok {
		st.Cache = &cs
	}
	return st, nil
}

type labels map[string]string

func labelsOf(m *dto.Metric) labels {
	lp := labels{}
	for _, l := range m.GetLabel() {
		lp[l.GetName()] = l.GetValue()
	}
	return lp
}
