package policy

import "time"

// CacheRules is a route's cache policy: the YAML under routes[].cache.
// The zero value caches nothing.
type CacheRules struct {
	// Enabled turns caching on for the route; off, every request goes to
	// the origin and responses say Cache-Status: accel; fwd=bypass.
	Enabled bool `yaml:"enabled"`
	// DefaultTTL is the freshness lifetime of a cacheable response that
	// gives none (no max-age, s-maxage or Expires) and is not eligible for
	// heuristic freshness (no Last-Modified). Zero: none, such a response
	// is stored only to be revalidated or served stale within the windows.
	DefaultTTL Duration `yaml:"default_ttl"`
	// TTLOverride, when set, replaces whatever lifetime the origin gave.
	TTLOverride Duration `yaml:"ttl_override"`
	// TTLCap bounds any lifetime, the origin's or the heuristic one. Zero:
	// no cap (heuristic lifetimes are capped at HeuristicMax regardless).
	TTLCap Duration `yaml:"ttl_cap"`
	// StaleWhileRevalidate and StaleIfError are the windows (RFC 5861)
	// used when the response carries no such directive: the "grace".
	// Zero: none. Never applied past must-revalidate, proxy-revalidate,
	// s-maxage or no-cache.
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate"`
	StaleIfError         Duration `yaml:"stale_if_error"`
	// Key changes what makes two requests the same object.
	Key KeyOptions `yaml:"key"`
	// StoreSetCookie stores responses carrying Set-Cookie, stripped of it.
	StoreSetCookie bool `yaml:"store_set_cookie"`
	// MaxObjectSize bounds a stored body; larger responses pass through.
	// Zero: DefaultMaxObjectSize.
	MaxObjectSize ByteSize `yaml:"max_object_size"`
	// Coalesce bounds request coalescing on a miss.
	Coalesce CoalesceRules `yaml:"coalesce"`
	// TargetedField names a targeted cache-control field of the route's
	// own (RFC 9213), such as "Accel-Cache-Control": it takes precedence
	// over CDN-Cache-Control, which takes precedence over Cache-Control,
	// and it is consumed: never stored, never sent to clients.
	// CDN-Cache-Control is honoured and passed on either way.
	TargetedField string `yaml:"targeted_field"`
	// PassHead sends HEAD requests the cache cannot answer to the origin
	// as HEAD. By default (false) a HEAD miss is fetched as a GET, as
	// Varnish does, so the object is stored for the GETs that follow;
	// set it for origins whose GETs are expensive. Either way a 200 to a
	// HEAD updates or invalidates the stored GET response.
	PassHead bool `yaml:"pass_head"`
	// EarlyHints says when, on a miss or a revalidation, the Link
	// rel=preload and rel=preconnect fields of the stored version go out
	// at once as a 103 Early Hints while the origin works: "html" (the
	// default, "" too) for text/html responses, "all", or "off".
	EarlyHints string `yaml:"early_hints"`
	// Compress has the cache compress what it stores (compress.go).
	Compress CompressRules `yaml:"compress"`

	// full is these rules with their defaults filled, made once by the
	// config check, so that a request does not copy them (Full).
	full *CacheRules
}

// Full returns the rules with their defaults filled (WithDefaults): the
// copy the config check made, or, for rules that never went through it,
// one made now.
func (r *CacheRules) Full() *CacheRules {
	if r.full != nil {
		return r.full
	}
	d := r.WithDefaults()
	return &d
}

// KeyOptions change the primary cache key of a route.
type KeyOptions struct {
	// IgnoreQuery drops the named query parameters; "*" drops the query.
	IgnoreQuery []string `yaml:"ignore_query"`
	// SortQuery orders query parameters so that ?a=1&b=2 and ?b=2&a=1 are
	// one object.
	SortQuery bool `yaml:"sort_query"`
	// Headers and Cookies add request header values and cookie values.
	Headers []string `yaml:"headers"`
	Cookies []string `yaml:"cookies"`
}

// CoalesceRules bound the requests that wait for one origin fetch.
type CoalesceRules struct {
	// MaxWaiters bounds the requests waiting on one fetch; more go to the
	// origin on their own. Zero: DefaultMaxWaiters.
	MaxWaiters int `yaml:"max_waiters"`
	// WaitTimeout bounds how long a waiter waits for the response head
	// before going to the origin itself. Zero: DefaultWaitTimeout.
	WaitTimeout Duration `yaml:"wait_timeout"`
	// HitForPass is how long a key whose response was not storable sends
	// its requests straight to the origin instead of waiting in line.
	// Zero: DefaultHitForPass.
	HitForPass Duration `yaml:"hit_for_pass"`
}

// Defaults for the zero fields of CacheRules.
const (
	DefaultMaxObjectSize ByteSize = 32 << 20
	DefaultMaxWaiters             = 1024
	DefaultWaitTimeout            = Duration(10 * time.Second)
	DefaultHitForPass             = Duration(10 * time.Second)
)

// WithDefaults returns a copy of r whose zero fields that have a default
// hold it.
func (r CacheRules) WithDefaults() CacheRules {
	if r.MaxObjectSize <= 0 {
		r.MaxObjectSize = DefaultMaxObjectSize
	}
	if r.Coalesce.MaxWaiters <= 0 {
		r.Coalesce.MaxWaiters = DefaultMaxWaiters
	}
	if r.Coalesce.WaitTimeout <= 0 {
		r.Coalesce.WaitTimeout = DefaultWaitTimeout
	}
	if r.Coalesce.HitForPass <= 0 {
		r.Coalesce.HitForPass = DefaultHitForPass
	}
	if r.Compress.Enabled {
		r.Compress = r.Compress.WithDefaults()
	}
	return r
}
