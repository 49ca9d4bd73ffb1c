package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/accel-proxy/accel/internal/cfgerr"
	"go.yaml.in/yaml/v3"
)

// Config is the whole of accel's configuration: one YAML file. The zero
// value is not runnable; Parse validates what the file decides (routes,
// references between sections, listeners). A key left unset stays zero:
// its default, and the checks of its value, belong to the package that
// uses it, whose Config accel's wiring fills from this one.
type Config struct {
	// Listen lists the client listeners. Each serves HTTP/1.1 and h2c, and
	// TLS with ALPN h2 and http/1.1 when it has a tls section.
	Listen []Listener `yaml:"listen"`
	// Limits bound what one client may cost.
	Limits Limits `yaml:"limits"`
	// Pools are the origin server groups routes send requests to.
	Pools []Pool `yaml:"pools"`
	// Routes map host and path prefix to a pool and a cache policy. The
	// most specific match wins: exact host over wildcard over any, then the
	// longest path prefix.
	Routes []Route `yaml:"routes"`
	// Cache sizes the shared object store.
	Cache CacheStore `yaml:"cache"`
	// TLSSessions is the TLS session store shared by a fleet.
	TLSSessions TLSSessions `yaml:"tls_sessions"`
	// Admin is the operator's API: purge, stats, metrics, reload.
	Admin Admin `yaml:"admin"`
	// Fleet is what the instances of a fleet share beyond TLS sessions.
	Fleet Fleet `yaml:"fleet"`
	// Log sets the access and error log format.
	Log Log `yaml:"log"`

	// File is where the config was read from, for messages.
	File string `yaml:"-"`
	// root is the parsed YAML, for the lines Where reports.
	root *yaml.Node
}

// Where names a place in the file the way validation errors do,
// "file:line: path", for checks made outside policy (certificates that
// fail to load, say).
func (c *Config) Where(path ...any) string {
	w := c.File
	if line := lineOf(c.root, path); line > 0 {
		w += ":" + strconv.Itoa(line)
	}
	return w + ": " + cfgerr.Path(path...)
}

// Listener is one client-facing socket.
type Listener struct {
	// Address is host:port; ":8080" listens on every address.
	Address string `yaml:"address"`
	// TLS, when set, makes the listener sniff TLS handshakes (ALPN h2 and
	// http/1.1) next to cleartext HTTP/1.1 and h2c on the same port.
	TLS *ListenerTLS `yaml:"tls"`
	// HTTP2 sets the HTTP/2 server's limits for this listener.
	HTTP2 HTTP2 `yaml:"http2"`
	// ProxyProtocol makes every connection start with a PROXY protocol
	// header (v1 or v2, as HAProxy's send-proxy and send-proxy-v2 write
	// it), whose client address then stands for the connection's in
	// X-Forwarded-For, purge_from and the logs. Only ProxyFrom networks
	// may connect to such a listener; a connection from elsewhere, or with
	// a missing or malformed header, is closed.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// ProxyFrom lists the balancers' networks (CIDR); required with
	// ProxyProtocol.
	ProxyFrom []string `yaml:"proxy_from"`

	// proxyNets is ProxyFrom parsed by Validate.
	proxyNets []netip.Prefix
}

// ListenerTLS is a listener's certificates.
type ListenerTLS struct {
	// Certificates are chosen by SNI; the first is the default for clients
	// that send no name or an unknown one.
	Certificates []Certificate `yaml:"certificates"`
	// SelfSigned makes a throwaway certificate at start, for local trials
	// only: clients will not trust it.
	SelfSigned bool `yaml:"self_signed"`
	// MinVersion is "1.2" or "1.3"; unset is 1.2.
	MinVersion string `yaml:"min_version"`
}

// Certificate is a PEM certificate chain and its key (ECDSA or RSA).
type Certificate struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// HTTP2 holds the HTTP/2 limits (RFC 9113 §6.5.2 settings): h2.Config's,
// where their defaults and checks are.
type HTTP2 struct {
	// MaxConcurrentStreams per connection.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	// MaxHeaderListSize bounds a decoded header list.
	MaxHeaderListSize ByteSize `yaml:"max_header_list_size"`
	// MaxFrameSize is the largest frame we accept, 16KiB (the protocol
	// minimum) to 16MiB.
	MaxFrameSize ByteSize `yaml:"max_frame_size"`
	// MaxHeaderBlockSize bounds the encoded bytes of one header block
	// (HEADERS and its CONTINUATION frames); past it the connection gets
	// GOAWAY ENHANCE_YOUR_CALM; unset, max_header_list_size.
	MaxHeaderBlockSize ByteSize `yaml:"max_header_block_size"`
	// MaxResets is how many streams may end in a reset (by the client,
	// or by accel for the client's errors, or refused) per abuse_window
	// before GOAWAY ENHANCE_YOUR_CALM (rapid reset, MadeYouReset).
	MaxResets int `yaml:"max_resets"`
	// MaxIdleFrames is how many frames that produce no response
	// (SETTINGS, PING, PRIORITY, small WINDOW_UPDATE or DATA, ...) a
	// connection may send per abuse_window.
	MaxIdleFrames int `yaml:"max_idle_frames"`
	// AbuseWindow is the period max_resets and max_idle_frames count
	// over.
	AbuseWindow Duration `yaml:"abuse_window"`
}

// Limits bound a client connection, so that a slow or hostile client cannot
// hold resources forever: h1.Config's (the timeouts bound HTTP/2
// connections too), where their defaults and checks are.
type Limits struct {
	// MaxHeadBytes bounds a request head (431 above it).
	MaxHeadBytes ByteSize `yaml:"max_head_bytes"`
	// MaxTargetBytes bounds a request-target (414 above it).
	MaxTargetBytes ByteSize `yaml:"max_target_bytes"`
	// HeaderTimeout is the time a client has to send a whole request head
	// once it started one (the slowloris bound).
	HeaderTimeout Duration `yaml:"header_timeout"`
	// ReadTimeout bounds each wait for request body bytes.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds each wait for the client to take response
	// bytes.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection with no request; 75s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// OriginFetchesPerClient bounds the origin fetches one client address
	// has under way at once, from the request to the end of its response
	// body; one more is answered 503 with Retry-After, as HAProxy's
	// connection limits answer. Default 0: no limit, as in nginx
	// (limit_conn) and HAProxy, since behind a load balancer or a CDN
	// every client has the same few addresses. Response buffering already
	// keeps slow readers off the origin connections; this bounds what one
	// address may take of the queue and the buffers.
	OriginFetchesPerClient int `yaml:"origin_fetches_per_client"`
}

// Pool is a group of origin servers and how to use them: upstream.Config's,
// where the defaults and checks of its values are.
type Pool struct {
	Name    string   `yaml:"name"`
	Servers []Server `yaml:"servers"`
	// Balance is round_robin (smooth weighted) or least_conn.
	Balance           string   `yaml:"balance"`
	MaxConnsPerServer int      `yaml:"max_conns_per_server"`
	QueueSize         int      `yaml:"queue_size"`
	QueueTimeout      Duration `yaml:"queue_timeout"`
	ConnectTimeout    Duration `yaml:"connect_timeout"`
	FirstByteTimeout  Duration `yaml:"first_byte_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// Retries is how many other servers an idempotent request may try;
	// unset means 2.
	Retries     *int     `yaml:"retries"`
	RetryBudget Duration `yaml:"retry_budget"`
	// RedialWindow is how long refused connections are dialled again
	// (an origin restarting).
	RedialWindow  Duration `yaml:"redial_window"`
	FailThreshold int      `yaml:"fail_threshold"`
	FailWindow    Duration `yaml:"fail_window"`
	Cooldown      Duration `yaml:"cooldown"`
	Health        Health   `yaml:"health"`
	Buffer        Buffer   `yaml:"buffer"`
	// TLS configures connections to the pool's https:// servers.
	TLS OriginTLS `yaml:"tls"`
}

// Buffer is how a response body is read from the origin ahead of a slow
// client, as nginx's proxy buffering does: into memory, then a temp file,
// so that the origin connection is free once the origin finished.
type Buffer struct {
	// Memory per response; unset means 64KiB, 0 turns buffering off
	// (bodies move at the client's pace, holding their origin connection).
	Memory *ByteSize `yaml:"memory"`
	// MaxTempFile bounds the temp file of one response; unset means 1GiB,
	// 0 means memory only.
	MaxTempFile *ByteSize `yaml:"max_temp_file"`
	// TempDir holds the (unlinked) temp files.
	TempDir string `yaml:"temp_dir"`
}

// Server is one origin server of a pool.
type Server struct {
	// Address is host:port, or https://host[:port] (port 443 by default)
	// for an origin reached over TLS; http:// may be written too.
	Address string `yaml:"address"`
	// Weight is the server's share of requests.
	Weight int `yaml:"weight"`
}

// Health configures active health checks; off when Path is empty.
type Health struct {
	Path     string   `yaml:"path"`
	Interval Duration `yaml:"interval"`
}

// Route sends matching requests to a pool under a cache policy.
type Route struct {
	// Host matches the request's host: exact ("example.com"), a wildcard
	// for subdomains ("*.example.com"), or empty for any host.
	Host string `yaml:"host"`
	// Path is a path prefix; default "/".
	Path string `yaml:"path"`
	Pool string `yaml:"pool"`
	// RetryUnsafe lets PUT and DELETE (idempotent by RFC 9110, but only
	// if the application made them so) be retried on another server.
	RetryUnsafe bool       `yaml:"retry_unsafe"`
	Cache       CacheRules `yaml:"cache"`
	// PurgeFrom lists networks (CIDR) allowed to send the PURGE method on
	// the client listener; empty means PURGE is refused there.
	PurgeFrom []string `yaml:"purge_from"`

	// FleetFetch sends this route's misses to the fleet member that owns
	// the key (fleet.members), so that a fleet asks the origin once.
	FleetFetch bool `yaml:"fleet_fetch"`
	// Headers change request fields towards the origin and response
	// fields towards the client.
	Headers HeaderRules `yaml:"headers"`

	// purgeNets is PurgeFrom parsed by Validate.
	purgeNets []netip.Prefix
	// reqOps and respOps are Headers validated (headers.go).
	reqOps, respOps []HeaderOp
}

// CacheStore sizes the object store's tiers: cache.Config's, where the
// sizes' defaults are.
type CacheStore struct {
	// Memory is the memory tier's size.
	Memory ByteSize `yaml:"memory"`
	// Dir holds the persistent tier, so a restart starts warm; default
	// cache in DefaultDataDir. "off" keeps the cache in memory only.
	Dir string `yaml:"dir"`
	// Disk bounds the persistent tier.
	Disk ByteSize `yaml:"disk"`
}

// TLSSessions configures the TLS session store a fleet shares:
// tlsstore.Config's, where the defaults and checks of its values are.
type TLSSessions struct {
	// Mode is stateful (tickets are opaque ids of sessions kept in
	// the store) or stateless (tickets encrypted with a shared key ring).
	Mode string `yaml:"mode"`
	// Backend is memory, redis or memcached.
	Backend string   `yaml:"backend"`
	Addrs   []string `yaml:"addrs"`
	// Dir persists the memory backend's sessions; default sessions in
	// DefaultDataDir, "off" for none.
	Dir            string   `yaml:"dir"`
	Lifetime       Duration `yaml:"lifetime"`
	Timeout        Duration `yaml:"timeout"`
	RotationPeriod Duration `yaml:"rotation_period"`
	KeyWindow      int      `yaml:"key_window"`
	// Namespace separates fleets that share one Redis or memcached.
	Namespace string `yaml:"namespace"`
}

// Admin configures the admin listener: admin.Config's, where its defaults
// and checks are.
type Admin struct {
	// Listen is the admin address, "off" for none.
	Listen string `yaml:"listen"`
	// Token is the bearer token; prefer TokenEnv to keep it out of files.
	Token    string `yaml:"token"`
	TokenEnv string `yaml:"token_env"`
}

// Log sets the log format and where the access log goes. The access keys
// are accesslog.Config's, where their defaults and checks are.
type Log struct {
	// Format is text or json; unset is text.
	Format string `yaml:"format"`
	// Access turns the access log on (unset) or off.
	Access *bool `yaml:"access"`
	// AccessFile is the access log's file; unset, stderr.
	AccessFile string `yaml:"access_file"`
	// AccessFormat is log, combined, json or template.
	AccessFormat string `yaml:"access_format"`
	// AccessTemplate is the line for access_format template.
	AccessTemplate string `yaml:"access_template"`
	// AccessMaxSize rotates the access file past this size.
	AccessMaxSize ByteSize `yaml:"access_max_size"`
	// AccessKeep is how many rotated files are kept.
	AccessKeep int `yaml:"access_keep"`
}

// Load reads and validates the config file at path. Relative paths in
// the file (certificates, data directories) are taken from the file's
// directory, and so is the default data directory, as HAProxy's
// "default-path config" does: the same file means the same files whatever
// directory accel is started from.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(data, path, filepath.Dir(path))
}

// Parse decodes data strictly (unknown fields are errors), fills defaults
// and validates. Every error names file, line and YAML path.
func Parse(data []byte, file string) (*Config, error) {
	return parse(data, file, "")
}

// parse is Parse with relative paths resolved against base when it is
// not empty.
func parse(data []byte, file, base string) (*Config, error) {
	if file == "" {
		file = "config"
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, nil, err)
	}
	cfg := &Config{File: file, root: &root}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(file, &root, err)
	}
	cfg.defaults()
	if base != "" {
		cfg.resolvePaths(base)
	}
	if err := cfg.validate(&root); err != nil {
		return nil, err
	}
	return cfg, nil
}

var (
	typeName = regexp.MustCompile(`field (\S+) not found in type .*`)
	lineNo   = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)
)

// yamlError turns yaml.v3's messages, written for Go programmers, into
// ones for operators: file:line: what, one problem per line, no Go types.
func yamlError(file string, root *yaml.Node, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		m = strings.Replace(m, "cannot unmarshal !!", "wrong type !!", 1)
		sub := lineNo.FindStringSubmatch(m)
		if tn := typeName.FindStringSubmatch(m); tn != nil && sub != nil && root != nil {
			line, _ := strconv.Atoi(sub[1])
			if msg, ok := unknownKey(root, line, tn[1]); ok {
				errs[i] = errors.New(file + ":" + sub[1] + ": " + msg)
				continue
			}
		}
		m = typeName.ReplaceAllString(m, "unknown field $1")
		if sub != nil {
			m = file + ":" + sub[1] + ": " + m[len(sub[0]):]
		} else {
			m = file + ": " + strings.TrimPrefix(m, "yaml: ")
		}
		errs[i] = errors.New(m)
	}
	return errors.Join(errs...)
}

// defaults fills what the file itself decides when a key is unset: a
// route's path, and where the data directories are (beside the file, see
// Load). Every other default belongs to the package that uses the value
// (h1, h2, upstream, cache, tlsstore, admin, fleet), which fills it from
// the zero value accel's wiring passes on, so that it is written once.
func (c *Config) defaults() {
	for i := range c.Routes {
		if c.Routes[i].Path == "" {
			c.Routes[i].Path = "/"
		}
	}
	cacheDir, sessionsDir := DataDirs(DefaultDataDir)
	if c.Cache.Dir == "" {
		c.Cache.Dir = cacheDir
	}
	s := &c.TLSSessions
	if s.Dir == "" && (s.Backend == "" || s.Backend == "memory") {
		s.Dir = sessionsDir
	}
}

// DefaultDataDir is the data directory of a file that names none, taken
// from the file's directory (Load).
const DefaultDataDir = "accel-data"

// DataDirs returns where the cache's persistent tier and the session store
// live in a data directory.
func DataDirs(dataDir string) (cache, sessions string) {
	return filepath.Join(dataDir, "cache"), filepath.Join(dataDir, "sessions")
}

// resolvePaths makes the file's relative paths relative to base.
func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && *p != "off" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	for _, l := range c.Listen {
		if l.TLS == nil {
			continue
		}
		for j := range l.TLS.Certificates {
			abs(&l.TLS.Certificates[j].Cert)
			abs(&l.TLS.Certificates[j].Key)
		}
	}
	for i := range c.Pools {
		t := &c.Pools[i].TLS
		abs(&t.CAFile)
		abs(&t.Cert)
		abs(&t.Key)
	}
	abs(&c.Cache.Dir)
	abs(&c.TLSSessions.Dir)
	for i := range c.Pools {
		abs(&c.Pools[i].Buffer.TempDir)
	}
	abs(&c.Log.AccessFile)
}

// checker collects validation errors, each with the line of the YAML node
// it is about.
type checker struct {
	file string
	root *yaml.Node
	errs []error
}

func (k *checker) failf(path []any, format string, args ...any) {
	line := lineOf(k.root, path)
	var b strings.Builder
	b.WriteString(k.file)
	if line > 0 {
		b.WriteString(":" + strconv.Itoa(line))
	}
	b.WriteString(": " + cfgerr.Path(path...) + ": ")
	fmt.Fprintf(&b, format, args...)
	k.errs = append(k.errs, errors.New(b.String()))
}

// lineOf finds the line of the node at path, or of its closest ancestor
// present in the file (a missing field is reported where its parent is).
func lineOf(n *yaml.Node, path []any) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
				// An item's own line, a scalar one's too (addrs[1]).
				line = next.Line
			}
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if n.Kind != yaml.ScalarNode {
			line = n.Line
		}
	}
	return line
}

func (c *Config) validate(root *yaml.Node) error {
	k := &checker{file: c.File, root: root}
	if len(c.Listen) == 0 {
		k.failf([]any{"listen"}, "at least one listener is needed")
	}
	for i, l := range c.Listen {
		p := []any{"listen", i}
		checkAddress(k, append(p, "address"), l.Address)
		if t := l.TLS; t != nil {
			if len(t.Certificates) == 0 && !t.SelfSigned {
				k.failf(append(p, "tls"), "needs certificates or self_signed: true")
			}
			for j, cert := range t.Certificates {
				cp := append(p, "tls", "certificates", j)
				if cert.Cert == "" || cert.Key == "" {
					k.failf(cp, "needs both cert and key")
				}
			}
			if t.MinVersion != "" && t.MinVersion != "1.2" && t.MinVersion != "1.3" {
				k.failf(append(p, "tls", "min_version"), "%q is not 1.2 or 1.3", t.MinVersion)
			}
		}
		c.Listen[i].proxyNets = checkProxyFrom(k, p, l)
	}
	if c.Limits.OriginFetchesPerClient < 0 {
		k.failf([]any{"limits", "origin_fetches_per_client"}, "is negative")
	}
	pools := map[string]bool{}
	for i, p := range c.Pools {
		pp := []any{"pools", i}
		switch {
		case p.Name == "":
			k.failf(append(pp, "name"), "a pool needs a name")
		case pools[p.Name]:
			k.failf(append(pp, "name"), "pool %q is defined twice", p.Name)
		}
		pools[p.Name] = true
		// The servers, sizes and timeouts are upstream's to check
		// (accel's wiring); -1 is no spelling of "no retries" here.
		if p.Retries != nil && *p.Retries < 0 {
			k.failf(append(pp, "retries"), "is negative")
		}
	}
	if len(c.Routes) == 0 {
		k.failf([]any{"routes"}, "at least one route is needed")
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		rp := []any{"routes", i}
		if r.Pool == "" {
			k.failf(append(rp, "pool"), "a route needs a pool")
		} else if !pools[r.Pool] {
			k.failf(append(rp, "pool"), "pool %q is not defined", r.Pool)
		}
		if !strings.HasPrefix(r.Path, "/") {
			k.failf(append(rp, "path"), "%q does not start with /", r.Path)
		}
		if strings.ContainsAny(r.Host, "/ :") {
			k.failf(append(rp, "host"), "%q is not a host name", r.Host)
		}
		checkCacheRules(k, append(rp, "cache"), &r.Cache)
		r.reqOps = checkHeaders(k, append(rp, "headers", "request"), r.Headers.Request)
		r.respOps = checkHeaders(k, append(rp, "headers", "response"), r.Headers.Response)
		r.purgeNets = r.purgeNets[:0]
		for j, s := range r.PurgeFrom {
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				k.failf(append(rp, "purge_from", j), "%q is not a network (like 127.0.0.0/8)", s)
				continue
			}
			r.purgeNets = append(r.purgeNets, pfx.Masked())
		}
	}
	c.Fleet.check(k)
	if c.Log.Format != "" && c.Log.Format != "text" && c.Log.Format != "json" {
		k.failf([]any{"log", "format"}, "%q is not text or json", c.Log.Format)
	}
	return errors.Join(k.errs...)
}

func checkAddress(k *checker, path []any, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		k.failf(path, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		k.failf(path, "%q has no valid port", addr)
		return
	}
	if strings.ContainsAny(host, " /") {
		k.failf(path, "%q has no valid host", addr)
	}
}
