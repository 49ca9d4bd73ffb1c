package policy

import (
	"reflect"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

func cc(lines ...string) CacheControl {
	var fs parser.Fields
	for _, l := range lines {
		fs = fs.Add("Cache-Control", l)
	}
	return ParseCacheControl(fs)
}

func TestParseCacheControl(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		in   []string
		want func(*CacheControl)
	}{
		{[]string{"no-store"}, func(c *CacheControl) { c.NoStore = true }},
		{[]string{"No-Cache"}, func(c *CacheControl) { c.NoCache = true }},
		{[]string{`no-cache="Set-Cookie, X-A"`}, func(c *CacheControl) { c.NoCacheFields = []string{"set-cookie", "x-a"} }},
		{[]string{"private"}, func(c *CacheControl) { c.Private = true }},
		{[]string{`private="x-user"`}, func(c *CacheControl) { c.PrivateFields = []string{"x-user"} }},
		{[]string{"public, max-age=60"}, func(c *CacheControl) { c.Public, c.MaxAge = true, 60*s }},
		{[]string{`max-age="30"`}, func(c *CacheControl) { c.MaxAge = 30 * s }},
		{[]string{"max-age=10", "max-age=20"}, func(c *CacheControl) { c.MaxAge = 10 * s }},
		{[]string{"max-age=abc"}, func(c *CacheControl) { c.MaxAge = 0 }},
		{[]string{"max-age=99999999999999"}, func(c *CacheControl) { c.MaxAge = deltaCap * s }},
		{[]string{"s-maxage=5"}, func(c *CacheControl) { c.SMaxAge = 5 * s }},
		{[]string{"must-revalidate"}, func(c *CacheControl) { c.MustRevalidate = true }},
		{[]string{"proxy-revalidate"}, func(c *CacheControl) { c.ProxyRevalidate = true }},
		{[]string{"must-understand, no-store"}, func(c *CacheControl) { c.MustUnderstand, c.NoStore = true, true }},
		{[]string{"no-transform"}, func(c *CacheControl) { c.NoTransform = true }},
		{[]string{"immutable"}, func(c *CacheControl) { c.Immutable = true }},
		{[]string{"max-stale"}, func(c *CacheControl) { c.MaxStale = MaxStaleAny }},
		{[]string{"max-stale=7"}, func(c *CacheControl) { c.MaxStale = 7 * s }},
		{[]string{"min-fresh=3"}, func(c *CacheControl) { c.MinFresh = 3 * s }},
		{[]string{"only-if-cached"}, func(c *CacheControl) { c.OnlyIfCached = true }},
		{[]string{"stale-while-revalidate=30, stale-if-error=600"}, func(c *CacheControl) { c.StaleWhileRevalidate, c.StaleIfError = 30*s, 600*s }},
		{[]string{" , unknown-ext=\"a,b\" ,max-age=1"}, func(c *CacheControl) { c.MaxAge = s }},
		// RFC 9111 §5.2: a cache-directive has no whitespace around "=";
		// such an argument is invalid, and an invalid delta is stale.
		{[]string{"max-age =3600"}, func(c *CacheControl) { c.MaxAge = 0 }},
		{[]string{"max-age= 3600"}, func(c *CacheControl) { c.MaxAge = 0 }},
		{[]string{"max-stale= 60"}, func(c *CacheControl) { c.MaxStale = 0 }},
		{[]string{`no-cache= "a"`}, func(c *CacheControl) { c.NoCache = true }},
		{[]string{"max-age=3600 , s-maxage=60\t"}, func(c *CacheControl) { c.MaxAge, c.SMaxAge = 3600*s, 60*s }},
		{[]string{"max-age='3600'"}, func(c *CacheControl) { c.MaxAge = 0 }},
		{[]string{"max-age=003600"}, func(c *CacheControl) { c.MaxAge = 3600 * s }},
	} {
		want := cc()
		tc.want(&want)
		if got := cc(tc.in...); !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, want)
		}
	}
}

// RFC 9111 §5.4 (as RFC 7234 §5.4 required): a request's Pragma: no-cache
// is Cache-Control: no-cache when the request has no Cache-Control.
func TestParseRequestCacheControl(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fs      []string
		noCache bool
	}{
		{"pragma no-cache", []string{"Pragma", "no-cache"}, true},
		{"pragma in a list", []string{"Pragma", "x-a=1, No-Cache"}, true},
		{"pragma extension", []string{"Pragma", "x-no-cache"}, false},
		{"cache-control present", []string{"Pragma", "no-cache", "Cache-Control", "max-stale"}, false},
		{"cache-control no-cache", []string{"Cache-Control", "no-cache"}, true},
	} {
		var fs parser.Fields
		for i := 0; i+1 < len(tc.fs); i += 2 {
			fs = fs.Add(tc.fs[i], tc.fs[i+1])
		}
		if got := ParseRequestCacheControl(fs).NoCache; got != tc.noCache {
			t.Errorf("%s: no-cache %v, want %v", tc.name, got, tc.noCache)
		}
	}
}

// Every origin answer's Cache-Control is parsed on the miss path: the
// directives it names, with or without an argument, in any case, cost no
// allocation (a qualified no-cache or private keeps its field names).
func TestParseCacheControlAllocs(t *testing.T) {
	fs := parser.Fields{}.Add("Cache-Control", "no-store").
		Add("Cache-Control", `Public, max-age=300, S-MaxAge=60, Stale-While-Revalidate=5, must-revalidate, no-cache=""`)
	var got CacheControl
	if n := testing.AllocsPerRun(100, func() { got = ParseCacheControl(fs) }); n != 0 {
		t.Errorf("ParseCacheControl allocates %v times", n)
	}
	if !got.NoStore || !got.Public || got.MaxAge != 300*time.Second || got.SMaxAge != 60*time.Second || !got.MustRevalidate || got.StaleWhileRevalidate != 5*time.Second || !got.NoCache {
		t.Errorf("parsed %+v", got)
	}
}
