package accel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/accesslog"
	"github.com/accel-proxy/accel/cache"
	"github.com/accel-proxy/accel/h1"
	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
	"github.com/accel-proxy/accel/upstream"
)

// responseWriter is what both fronts give the pipeline.
type responseWriter interface {
	SetContentLength(n int64)
	WriteHead(status int, fields parser.Fields) error
	Write(p []byte) (int, error)
	Flush() error
	// Written reports whether the head went out.
	Written() bool
	// Abort breaks a response whose head went out but whose body failed.
	Abort()
	// WriteInterim sends a 1xx head (an origin's 103 Early Hints, or the
	// cache's) before the final one.
	WriteInterim(status int, fields parser.Fields) error
	// WriteStored writes a whole response whose body is at hand (see
	// cache.ResponseWriter); its fields carry a Date.
	WriteStored(status int, fields parser.Fields, wire []byte, extra parser.Fields, body []byte) error
}

// exchange is one request as the pipeline sees it, from either front.
type exchange struct {
	req    *parser.Request
	body   io.Reader // nil when there is none
	tls    bool
	proto  string // "h1" or "h2", for metrics and Via
	remote net.Addr
	w      responseWriter
	// route is the matched route and reqID the request id (see
	// requestID), for the access log and the origin.
	route *policy.Route
	reqID []byte
	// idBuf holds a request id made here; logHost is the host as the
	// access log writes it.
	idBuf   [32]byte
	logHost []byte
	// cw and hostBuf are serveFast's, kept here so that a front which
	// reuses its exchange answers a hit without allocating.
	cw      countingWriter
	hostBuf []byte
	// client is the remote IP as text and addr the IP, made once: a
	// front that reuses its exchange, or copies these, pays for them once
	// per connection.
	client string
	addr   netip.Addr
	// began is when serveFast took up a request it then left to serve,
	// which times the request from there instead of reading the clock
	// again (a mono reading); zero otherwise.
	began time.Duration
}

// slot is where a request runs: its exchange, with the storage of serve's
// pass and of the access log line beside it, in one allocation that a
// connection reuses from one request to the next. The two are outside the
// exchange, which the fronts reset by value up to four times a request.
type slot struct {
	ex  exchange
	p   pass
	rec accesslog.Record
}

// slotIn is the slot a connection keeps in fast (its Conn's Fast).
func slotIn(fast *any) *slot {
	sl, _ := (*fast).(*slot)
	if sl == nil {
		sl = &slot{}
		*fast = sl
	}
	return sl
}

// monoBase anchors mono.
var monoBase = time.Now()

// mono reads the monotonic clock only, as time since the process started
// plus a second (never zero): a request's duration needs no wall clock,
// and time.Now reads both, which is a second clock read per request. On
// the hit path the clock reads were 3 % of the CPU.
func mono() time.Duration {
	return time.Since(monoBase) + time.Second
}

// tookSince is the time since t0, a mono reading; zero when t0 is.
func tookSince(t0 time.Duration) time.Duration {
	if t0 == 0 {
		return 0
	}
	return mono() - t0
}

// clientIP is the client's address as the access log and X-Forwarded-For
// write it.
func (ex *exchange) clientIP() string {
	if ex.client == "" {
		ex.addr = addrOf(ex.remote)
		ex.client = ipText(ex.addr)
	}
	return ex.client
}

// clientAddr is the client's IP address, made with clientIP.
func (ex *exchange) clientAddr() netip.Addr {
	ex.clientIP()
	return ex.addr
}

// serve is the pipeline: route, then cache or origin, then the answer.
func (s *Server) serve(ctx context.Context, sl *slot) {
	ex, p := &sl.ex, &sl.p
	start := ex.began
	if start == 0 {
		start = mono()
	}
	st := s.acquire()
	defer st.release()
	req := ex.req
	// The host is made in the exchange's buffer, as serveFast does (which
	// may have made it already): it is not kept past this request.
	ex.hostBuf = appendRouteHost(ex.hostBuf[:0], req.Host)
	host := parser.Alias(ex.hostBuf)
	target := originForm(req.Target)
	*p = pass{s: s, st: st, reqBody: ex.body, bufs: getHeadBufs()}
	cw := &p.cw
	*cw = countingWriter{responseWriter: ex.w, head: string(req.Method) == "HEAD"}
	result := "pass"
	var err error
	defer func() {
		cw.finish()
		s.logAccess(st, sl, target, cw, result, p.server.Load(), err, mono()-start)
		p.end()
	}()

	route := st.cfg.Match(host, parser.Alias(pathOf(target)))
	ex.route = route
	if route == nil {
		result = "error"
		writeError(cw, 404, "no route for this host and path")
		return
	}
	if string(req.Method) == "PURGE" {
		result = "purge"
		s.purge(cw, ex, route, target)
		return
	}
	if string(req.Method) == "CONNECT" {
		result = "error"
		writeError(cw, 405, "CONNECT is not supported")
		return
	}
	head := p.forwardHead(ex, target)
	cw.rules = responseRules(route, ex)
	p.route = route
	p.reqOps = route.RequestOps()
	if p.reqOps != nil {
		p.vars = newHeaderVars(ex)
	}
	p.retryable = idempotent(req.Method, route.RetryUnsafe)
	p.client = ex.clientAddr()
	if route.Cache.Enabled && s.cache != nil {
		var out cache.Outcome
		p.creq = cache.Request{Scheme: schemeOf(ex), Head: head}
		out, err = s.cache.Serve(ctx, &p.creq, &route.Cache, p, cw)
		result = out.Status
	} else {
		result = "bypass"
		err = passThrough(ctx, p, head, cw)
	}
	if err != nil {
		if cw.Written() {
			cw.Abort()
			return
		}
		result = "error"
		writeUpstreamError(cw, err)
	}
}

// pass is what serve keeps for a request that may go to an origin: the
// head the origin receives and what fetch needs. It is valid only while
// serve runs, so that a front may reuse its storage: a fetch the cache
// runs later (a background refresh) goes through a copy (Detach). The
// head's fields and the first origin answer are in pooled buffers
// (headBufs), which the answer holds until its body is closed. It keeps no
// pointer to the exchange, which a front may reuse once serve returned.
type pass struct {
	s      *Server
	st     *state
	route  *policy.Route
	reqOps []policy.HeaderOp
	vars   *headerVars // nil without reqOps
	// retryable and client are the request's, for every fetch.
	retryable bool
	client    netip.Addr
	// reqBody is the client's request body (nil when none): fetch reads
	// it here, not through ex, which the front reuses for its next
	// request once serve returned.
	reqBody io.Reader
	cw      countingWriter
	// server is set by fetch, for the log.
	server   atomic.Pointer[upstreamUse]
	bodySent atomic.Bool
	// taken is set by the fetch that uses the answer's storage (bufs'
	// and use), or by end when none did.
	taken atomic.Bool
	bufs  *headBufs

	creq cache.Request
	head parser.Request
	use  upstreamUse
}

// headBufs is the storage of a pass's two heads: the forwarded one, used
// while serve runs, and the origin's answer, which lives until its body is
// closed (cache.Response). Together 1.9 KiB that every miss allocated and
// the collector swept; pooled, they are reused once both heads are done
// with.
type headBufs struct {
	fields    [16]parser.Field
	vals      [160]byte
	outFields [16]parser.Field
	resp      cache.Response
	body      pinnedBody
	refs      atomic.Int32
}

var headBufPool = sync.Pool{New: func() any { return new(headBufs) }}

// getHeadBufs returns buffers held twice: by serve, and by the fetch that
// will take the pass's storage (released by the pass's end when none
// does), so that a fetch never takes a reference after serve let go of
// its own.
func getHeadBufs() *headBufs {
	b := headBufPool.Get().(*headBufs)
	b.refs.Store(2)
	return b
}

func (b *headBufs) release() {
	if b.refs.Add(-1) == 0 {
		// The fields point into buffers of past requests and
		// connections, the answer into a config generation and an
		// origin connection: cleared, the pool keeps none of them alive.
		parser.ClearUsed(b.fields[:])
		parser.ClearUsed(b.outFields[:])
		b.resp, b.body = cache.Response{}, pinnedBody{}
		headBufPool.Put(b)
	}
}

// end is serve's last use of p: a fetch the cache runs later (a
// background refresh) no longer takes the storage, and the buffers go back
// once the fetch that took them, if one did, closed its body.
func (p *pass) end() {
	if p.taken.CompareAndSwap(false, true) {
		p.bufs.release()
	}
	p.bufs.release()
}

// Detach is p for a fetch after serve returned: a copy on the heap that
// sends no request body, takes no storage and drops 1xx heads.
func (p *pass) Detach() cache.Fetcher {
	d := &pass{s: p.s, st: p.st, route: p.route, reqOps: p.reqOps, vars: p.vars, retryable: p.retryable, client: p.client}
	d.cw.final = true
	d.taken.Store(true)
	return d
}

// Fetch is the cache's way to the origin for this request.
func (p *pass) Fetch(ctx context.Context, h *parser.Request) (*cache.Response, error) {
	if err := ctx.Err(); err != nil {
		// The client is gone (an HTTP/2 stream reset, say): nothing
		// is sent to the origin for it.
		return nil, err
	}
	s, route := p.s, p.route
	if p.reqOps != nil {
		h = withRequestOps(h, p.reqOps, p.vars)
	}
	ureq := upstream.Request{Head: h, Retryable: p.retryable, Interim: p}
	if p.reqBody != nil && h.ContentLength != 0 && p.bodySent.CompareAndSwap(false, true) {
		// Only the client's own request carries its body; the cache's
		// background revalidations are bodiless GETs.
		ureq.Body = p.reqBody
		// A streamed body cannot be replayed to a second server.
		ureq.Retryable = false
	}
	// Each fetch pins the config generation it uses: the cache's
	// background refreshes run after this request let go of st, and a
	// reload must not close their pool under them.
	g := s.acquire()
	pool := g.pools[route.Pool]
	if pool == nil {
		pool = p.st.pools[route.Pool]
	}
	limit := g.cfg.Limits.OriginFetchesPerClient
	if !s.fetches.acquire(p.client, limit) {
		g.release()
		s.metrics.IncRejection("origin_fetches_per_client")
		return nil, errClientLimit
	}
	// Only the access log reads the time to the answer's head: without
	// it, the clock is not read for it.
	var t0 time.Duration
	if p.st.access.On() {
		t0 = mono()
	}
	resp, err := s.fleetDo(ctx, g, route, &ureq, pool)
	own := p.taken.CompareAndSwap(false, true)
	use := &p.use
	if !own {
		use = new(upstreamUse)
	}
	if err != nil {
		if own {
			p.bufs.release()
		}
		s.fetches.release(p.client, limit)
		g.release()
		// The log names the server whose try failed, when one did.
		if ue := (*upstream.Error)(nil); errors.As(err, &ue) {
			*use = upstreamUse{addr: ue.Server, took: tookSince(t0)}
			p.server.Store(use)
		}
		return nil, err
	}
	// resp dies with its body; the log line is written later.
	*use = upstreamUse{addr: resp.Server, took: tookSince(t0)}
	p.server.Store(use)
	// Only a fetch that took the storage touches p.bufs: after serve ended
	// they may be another request's.
	var out *cache.Response
	var body *pinnedBody
	var fields parser.Fields
	var bufs *headBufs
	if own {
		out, body, fields, bufs = &p.bufs.resp, &p.bufs.body, p.bufs.outFields[:0], p.bufs
	} else {
		out, body = new(cache.Response), new(pinnedBody)
	}
	*body = pinnedBody{ReadCloser: resp.Body, s: s, st: g, client: p.client, limit: limit, bufs: bufs}
	*out = cache.Response{
		Status:        resp.Head.Status,
		Fields:        responseFields(fields, resp.Head.Fields),
		ContentLength: resp.Head.ContentLength,
		Body:          body,
		Buffered:      resp.Buffered,
	}
	return out, nil
}

// pinnedBody holds a config generation, the client's fetch count and the
// head buffers it lives in (nil when not the pass's) until the origin body
// is closed.
type pinnedBody struct {
	io.ReadCloser
	s        *Server
	st       *state
	client   netip.Addr
	limit    int
	bufs     *headBufs
	released atomic.Bool
}

// Close lets go of the buffers last: the body may be in them, and the
// cache closes a body once and uses nothing of its Response after. A
// second Close finds the body cleared, until the buffers are reused.
func (b *pinnedBody) Close() error {
	if b.ReadCloser == nil {
		return nil
	}
	err := b.ReadCloser.Close()
	if b.released.Swap(true) {
		return err
	}
	b.s.fetches.release(b.client, b.limit)
	b.st.release()
	if b.bufs != nil {
		b.bufs.release()
	}
	return err
}

// passThrough answers from the origin without the cache.
func passThrough(ctx context.Context, f cache.Fetcher, head *parser.Request, w responseWriter) error {
	resp, err := f.Fetch(ctx, head)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	fields := append(resp.Fields, parser.Field{Name: []byte("Cache-Status"), Value: []byte("accel; fwd=bypass")})
	w.SetContentLength(resp.ContentLength)
	if err := w.WriteHead(resp.Status, fields); err != nil {
		return err
	}
	return copyBody(w, resp.Body)
}

// copyBody streams an origin body to the client, flushing whenever the
// origin pauses so that a slow origin's bytes are not held back.
func copyBody(w responseWriter, r io.Reader) error {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	for {
		n, err := r.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n < len(*buf) {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

// writeUpstreamError answers an origin failure: 502 when no origin could
// answer, 503 with Retry-After when the pool's queue is full, 504 on a
// timeout, 400 when the client's own body broke. The details (server
// addresses) go to the log, not to the client.
func writeUpstreamError(w responseWriter, err error) {
	status := upstream.Status(err)
	var fields parser.Fields
	msg := "the origin could not be reached"
	switch {
	case errors.Is(err, errClientLimit):
		status, msg = 503, "too many requests from this address are waiting for the origin"
		fields = append(fields, parser.Field{Name: []byte("Retry-After"), Value: []byte("1")})
	case errors.Is(err, upstream.ErrRequestBody):
		msg = "the request body could not be read"
	case status == 504:
		msg = "the origin did not answer in time"
	case status == 503:
		msg = "the origin pool is busy"
		fields = append(fields, parser.Field{Name: []byte("Retry-After"), Value: []byte("1")})
	}
	writeErrorFields(w, status, msg, fields)
}

// writeError answers with a short text body.
func writeError(w responseWriter, status int, msg string) {
	writeErrorFields(w, status, msg, nil)
}

func writeErrorFields(w responseWriter, status int, msg string, fields parser.Fields) {
	writeErrorBody(w, status, errorBody(status, msg), fields)
}

func errorBody(status int, msg string) []byte {
	return []byte(strconv.Itoa(status) + " " + h1.StatusText(status) + ": " + msg + "\n")
}

// textFields is the head of accel's own short answers; nothing writes to it.
var textFields = parser.Fields{{Name: []byte("Content-Type"), Value: []byte("text/plain; charset=utf-8")}}

// writeErrorBody answers with body, made by errorBody: once per answer, or
// once for good for the refusals serveFast makes without allocating.
func writeErrorBody(w responseWriter, status int, body []byte, fields parser.Fields) {
	if fields == nil {
		fields = textFields
	} else {
		fields = append(fields, textFields...)
	}
	w.SetContentLength(int64(len(body)))
	w.WriteHead(status, fields)
	w.Write(body)
}

// forwardHead builds the head the origin receives, in p's storage: the
// client's fields without hop-by-hop ones, with Host from the request,
// origin-form target, and X-Forwarded-For, X-Forwarded-Proto and Via
// added.
func (p *pass) forwardHead(ex *exchange, target []byte) *parser.Request {
	req := ex.req
	fields := p.bufs.fields[:0]
	opts := parser.ConnectionOptions(req.Fields)
	var xff, via bool
	for _, f := range req.Fields {
		switch {
		case parser.HopByHop(f.Name), parser.Listed(opts, f.Name),
			parser.EqualFold(f.Name, "Host"), parser.EqualFold(f.Name, "Content-Length"),
			parser.EqualFold(f.Name, "Expect"), parser.EqualFold(f.Name, "X-Forwarded-Proto"),
			parser.EqualFold(f.Name, "X-Request-Id"):
		case parser.EqualFold(f.Name, "X-Forwarded-For"):
			xff = true
		case parser.EqualFold(f.Name, "Via"):
			via = true
		default:
			fields = append(fields, f)
		}
	}
	// The values made here share one buffer, each appended whole before
	// the next starts and capped at its length, so that none grows into
	// another; one that outgrows the buffer moves to the heap.
	vals := p.bufs.vals[:0]
	if xff {
		vals = appendFieldList(vals, req.Fields, "X-Forwarded-For")
	}
	if ip := ex.clientIP(); ip != "" {
		vals = append(appendSep(vals, 0), ip...)
	}
	if len(vals) > 0 {
		fields = append(fields, parser.Field{Name: xffName, Value: vals[:len(vals):len(vals)]})
	}
	fields = append(fields, parser.Field{Name: xfpName, Value: schemeBytes(ex)})
	// The origin sees the id the access log writes: the client's when it
	// sent a usable one, else ours.
	fields = append(fields, parser.Field{Name: requestIDName, Value: ex.requestID()})
	from := len(vals)
	if via {
		vals = appendSep(appendFieldList(vals, req.Fields, "Via"), from)
	}
	vals = append(vals, viaToken(req)...)
	fields = append(fields, parser.Field{Name: viaName, Value: vals[from:len(vals):len(vals)]})
	p.head = parser.Request{
		Method:        req.Method,
		Target:        target,
		Host:          req.Host,
		Major:         1,
		Minor:         1,
		Fields:        fields,
		ContentLength: req.ContentLength,
	}
	if req.Chunked {
		p.head.ContentLength = -1
	}
	return &p.head
}

// Fixed names and values of the forwarded and returned heads; nothing
// writes to them.
var (
	xffName       = fixed("X-Forwarded-For")
	xfpName       = fixed("X-Forwarded-Proto")
	requestIDName = fixed("X-Request-Id")
	viaName       = fixed("Via")
	httpValue     = fixed("http")
	httpsValue    = fixed("https")
	via2          = fixed("2 accel")
	via11         = fixed("1.1 accel")
	via10         = fixed("1.0 accel")
)

// fixed is s as bytes without spare capacity, so that an append to it
// never writes into the shared array.
func fixed(s string) []byte {
	b := []byte(s)
	return b[:len(b):len(b)]
}

// appendFieldList appends the values of every field called name to dst,
// comma-separated.
func appendFieldList(dst []byte, fields parser.Fields, name string) []byte {
	from := len(dst)
	for _, f := range fields {
		if parser.EqualFold(f.Name, name) {
			dst = append(appendSep(dst, from), f.Value...)
		}
	}
	return dst
}

// appendSep appends ", " when dst holds a list item past from.
func appendSep(dst []byte, from int) []byte {
	if len(dst) > from {
		dst = append(dst, ", "...)
	}
	return dst
}

func schemeBytes(ex *exchange) []byte {
	if ex.tls {
		return httpsValue
	}
	return httpValue
}

func viaToken(req *parser.Request) []byte {
	switch {
	case req.Major == 2:
		return via2
	case req.Minor == 0:
		return via10
	}
	return via11
}

func appendList(list, v []byte) []byte {
	if len(list) > 0 {
		list = append(list, ", "...)
	}
	return append(list, v...)
}

// clientIP is a's IP as the log writes it.
func clientIP(a net.Addr) string { return ipText(addrOf(a)) }

// ipText is ip as the log writes it, "" for none (a Unix socket).
func ipText(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

func schemeOf(ex *exchange) string {
	if ex.tls {
		return "https"
	}
	return "http"
}

// idempotent says whether a request may be sent to a second server after
// the first failed: GET, HEAD and OPTIONS always; PUT and DELETE only where
// the route says the application made them idempotent.
func idempotent(method []byte, retryUnsafe bool) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	case "PUT", "DELETE":
		return retryUnsafe
	}
	return false
}

// normalHost lower-cases a host and drops its port, for route matching.
func normalHost(h []byte) string {
	s := string(h)
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "]") {
		s = s[:i]
	}
	return strings.ToLower(s)
}

// originForm turns an absolute-form target into the origin-form an origin
// expects (RFC 9112 §3.2.2); other forms pass unchanged.
func originForm(t []byte) []byte {
	if len(t) == 0 || t[0] == '/' || t[0] == '*' {
		return t
	}
	i := strings.Index(string(t), "://")
	if i < 0 {
		return t
	}
	rest := t[i+3:]
	for j, c := range rest {
		if c == '/' || c == '?' {
			if c == '?' {
				return append([]byte("/"), rest[j:]...)
			}
			return rest[j:]
		}
	}
	return []byte("/")
}

func pathOf(target []byte) []byte {
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		return target[:i]
	}
	return target
}

// responseFields is an origin response's head as accel forwards and
// stores it: hop-by-hop fields removed, and accel added to Via (RFC 9110
// §7.6.3), so that a stored response carries its Via and a hit writes
// its head as it is.
func responseFields(dst, fields parser.Fields) parser.Fields {
	opts := parser.ConnectionOptions(fields)
	out := dst[:0]
	via := false
	for _, f := range fields {
		switch {
		case parser.HopByHop(f.Name), parser.Listed(opts, f.Name):
		case parser.EqualFold(f.Name, "Via"):
			via = true
		default:
			out = append(out, f)
		}
	}
	if !via {
		return append(out, parser.Field{Name: viaName, Value: via11})
	}
	v := appendFieldList(nil, fields, "Via")
	return append(out, parser.Field{Name: viaName, Value: append(appendSep(v, 0), via11...)})
}
