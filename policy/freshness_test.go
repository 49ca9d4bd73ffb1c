package policy

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

func fields(kv ...string) parser.Fields {
	var fs parser.Fields
	for i := 0; i+1 < len(kv); i += 2 {
		fs = fs.Add(kv[i], kv[i+1])
	}
	return fs
}

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func date(d time.Duration) string { return t0.Add(d).Format(http.TimeFormat) }

func TestStorable(t *testing.T) {
	rules := &CacheRules{Enabled: true}
	cookies := &CacheRules{Enabled: true, StoreSetCookie: true}
	for _, tc := range []struct {
		name   string
		req    parser.Fields
		status int
		resp   parser.Fields
		rules  *CacheRules
		want   bool
	}{
		{"200 plain", nil, 200, nil, rules, true},
		{"302 without freshness", nil, 302, nil, rules, false},
		{"302 with max-age", nil, 302, fields("Cache-Control", "max-age=5"), rules, true},
		{"206", nil, 206, fields("Cache-Control", "max-age=5"), rules, false},
		{"no-store", nil, 200, fields("Cache-Control", "no-store"), rules, false},
		{"must-understand overrides no-store", nil, 200, fields("Cache-Control", "no-store, must-understand"), rules, true},
		{"must-understand unknown status", nil, 299, fields("Cache-Control", "no-store, must-understand, max-age=5"), rules, false},
		{"private", nil, 200, fields("Cache-Control", "private"), rules, false},
		{"private fields", nil, 200, fields("Cache-Control", `private="x"`), rules, true},
		{"request no-store", fields("Cache-Control", "no-store"), 200, nil, rules, false},
		{"authorization", fields("Authorization", "x"), 200, fields("Cache-Control", "max-age=5"), rules, false},
		{"authorization public", fields("Authorization", "x"), 200, fields("Cache-Control", "public"), rules, true},
		{"authorization s-maxage", fields("Authorization", "x"), 200, fields("Cache-Control", "s-maxage=5"), rules, true},
		{"authorization must-revalidate", fields("Authorization", "x"), 200, fields("Cache-Control", "must-revalidate"), rules, true},
		{"set-cookie", nil, 200, fields("Set-Cookie", "a=1"), rules, false},
		{"set-cookie allowed", nil, 200, fields("Set-Cookie", "a=1"), cookies, true},
		{"vary star", nil, 200, fields("Vary", "Accept, *"), rules, false},
	} {
		got, reason := Storable(tc.req, ParseCacheControl(tc.req), tc.status, tc.resp, ParseCacheControl(tc.resp), tc.rules)
		if got != tc.want {
			t.Errorf("%s: %v (%s), want %v", tc.name, got, reason, tc.want)
		}
	}
}

func TestLifetime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		resp   parser.Fields
		rules  CacheRules
		want   time.Duration
	}{
		{"s-maxage wins", 200, fields("Cache-Control", "max-age=10, s-maxage=20", "Expires", date(time.Hour)), CacheRules{}, 20 * time.Second},
		{"max-age over Expires", 200, fields("Cache-Control", "max-age=10", "Date", date(0), "Expires", date(time.Hour)), CacheRules{}, 10 * time.Second},
		{"Expires - Date", 200, fields("Date", date(0), "Expires", date(time.Hour)), CacheRules{}, time.Hour},
		{"invalid Expires", 200, fields("Date", date(0), "Expires", "0"), CacheRules{}, 0},
		{"heuristic 10%", 200, fields("Date", date(0), "Last-Modified", date(-10*time.Hour)), CacheRules{}, time.Hour},
		{"heuristic capped", 200, fields("Date", date(0), "Last-Modified", date(-1000*time.Hour)), CacheRules{}, HeuristicMax},
		{"no heuristic for 302", 302, fields("Date", date(0), "Last-Modified", date(-10*time.Hour)), CacheRules{}, 0},
		{"default ttl", 200, nil, CacheRules{DefaultTTL: Duration(time.Minute)}, time.Minute},
		{"override", 200, fields("Cache-Control", "max-age=10"), CacheRules{TTLOverride: Duration(time.Hour)}, time.Hour},
		{"cap", 200, fields("Cache-Control", "max-age=1000"), CacheRules{TTLCap: Duration(time.Minute)}, time.Minute},
	} {
		got, _ := Lifetime(tc.status, tc.resp, ParseCacheControl(tc.resp), &tc.rules, t0)
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestInitialAge(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name                string
		date, age           string
		requested, received time.Duration
		want                time.Duration
	}{
		// Age from upstream plus the response delay; apparent age when larger.
		{"age and delay", date(0), "30", s, 3 * s, 32 * s},
		{"apparent", date(-time.Minute), "", 0, 0, time.Minute},
		// RFC 9111 §1.2.2: a delta-seconds too large is 2^31.
		{"overflow", date(0), "99999999999999999999", 0, 0, deltaCap * s},
		// RFC 9111 §5.1: an invalid Age is ignored.
		{"negative", date(0), "-7200", 0, 0, 0},
		{"signed", date(0), "+7200", 0, 0, 0},
		{"float", date(0), "7200.0", 0, 0, 0},
		// ... after discarding all but the first member of a list.
		{"list", date(0), "7200, 0", 0, 0, 7200 * s},
		{"list, junk first", date(0), "7200x, 10", 0, 0, 0},
		{"junk after the number", date(0), "7200 s", 0, 0, 0},
	} {
		var age []byte
		if tc.age != "" {
			age = []byte(tc.age)
		}
		got := InitialAge([]byte(tc.date), age, t0.Add(tc.requested), t0.Add(tc.received))
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// RFC 9110 §5.6.7: the three HTTP-date forms and nothing else; RFC 9111
// §4.2: a cache matches them case-insensitively.
func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{"SUN, 06 NOV 1994 08:49:37 gmt", true},
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"Sun, 06 Nov 1994 08:49:37 PST", false},
		{"Sun, 06 Nov 1994 8:49:37 GMT", false},
		{"Sun, 06  Nov  1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 94 08:49:37 GMT", false},
		{"Sun 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06-Nov-1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 08.49.37 GMT", false},
		{"Mon, 06 Nov 1994 08:49:37 GMT", false}, // not that date's weekday
		{"sun, 06 nov 1994 08:49:37 Gmt", true},
		{"Sun, 31 Nov 1994 08:49:37 GMT", false}, // no such day
		{"Sun, 06 Nov 1994 08:49:60 GMT", false},
		{"Sun, 06 Nov 1994 24:49:37 GMT", false},
		{"Sun, 06 Nox 1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 08:49:37 GMTX", false},
		{"Sun, 0x Nov 1994 08:49:37 GMT", false},
		{"0", false},
		{"", false},
	} {
		got, ok := ParseHTTPDate([]byte(tc.in))
		if ok != tc.ok || (ok && !got.Equal(want)) {
			t.Errorf("%q: %v %v, want ok=%v", tc.in, got, ok, tc.ok)
		}
	}
}

// The allocation-free reading of IMF-fixdate agrees with time.Parse's on
// every day of a span of years, of the years its calendar arithmetic
// turns on (the first and last four-digit years, centuries with and
// without a leap day), and at every second of a day. Both refuse a date
// with the next day's weekday, and the day after a month's last.
func TestParseIMFFixdateAgrees(t *testing.T) {
	check := func(at time.Time) {
		s := at.Format(IMFFixdate)
		fast, ok := parseIMFFixdate([]byte(s))
		slow, sok := parseHTTPDateLayouts([]byte(s))
		if !ok || !sok || !fast.Equal(slow) || !fast.Equal(at) {
			t.Fatalf("%q: fast %v %v, time.Parse %v %v", s, fast, ok, slow, sok)
		}
		wrong := at.AddDate(0, 0, 1).Format(IMFFixdate)[:3] + s[3:]
		if _, ok := parseIMFFixdate([]byte(wrong)); ok {
			t.Fatalf("%q (a %v) taken", wrong, at.Weekday())
		}
		if _, ok := parseHTTPDateLayouts([]byte(wrong)); ok {
			t.Fatalf("time.Parse took %q (a %v)", wrong, at.Weekday())
		}
		if next := at.AddDate(0, 0, 1); next.Day() == 1 && at.Day() < 31 {
			// A month's last day: the day after it is no day.
			none := fmt.Sprintf("%s, %02d%s", next.Format(IMFFixdate)[:3], at.Day()+1, s[7:])
			_, ok := parseIMFFixdate([]byte(none))
			_, sok := parseHTTPDateLayouts([]byte(none))
			if ok || sok {
				t.Fatalf("%q taken: %v, by time.Parse: %v", none, ok, sok)
			}
		}
	}
	for d := time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2030; d = d.AddDate(0, 0, 1) {
		check(d)
	}
	for _, y := range []int{0, 1, 1600, 1700, 1900, 1969, 1970, 2100, 2400, 9999} {
		for d := time.Date(y, 1, 1, 23, 59, 59, 0, time.UTC); d.Year() == y; d = d.AddDate(0, 0, 1) {
			check(d)
		}
	}
	for d := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC); d.Day() == 29; d = d.Add(time.Second) {
		check(d)
	}
	if n := testing.AllocsPerRun(100, func() { ParseHTTPDate([]byte("Sun, 06 Nov 1994 08:49:37 GMT")) }); n != 0 {
		t.Errorf("ParseHTTPDate allocates %v times per IMF-fixdate", n)
	}
}

func TestReuse(t *testing.T) {
	s := time.Second
	fresh := Stored{Age: 10 * s, Lifetime: 60 * s}
	stale := Stored{Age: 70 * s, Lifetime: 60 * s}
	for _, tc := range []struct {
		name string
		st   Stored
		req  string
		want Use
	}{
		{"fresh", fresh, "", UseFresh},
		{"stale", stale, "", UseRevalidate},
		{"response no-cache", Stored{Age: 0, Lifetime: 60 * s, NoCache: true}, "", UseRevalidate},
		{"request no-cache", fresh, "no-cache", UseRevalidateRequest},
		{"request max-age", fresh, "max-age=5", UseRevalidateRequest},
		{"request max-age ok", fresh, "max-age=20", UseFresh},
		{"request min-fresh", fresh, "min-fresh=55", UseRevalidateRequest},
		{"request max-stale", stale, "max-stale=20", UseStale},
		{"request max-stale any", stale, "max-stale", UseStale},
		{"request max-stale short", stale, "max-stale=5", UseRevalidate},
		{"must-revalidate beats max-stale", Stored{Age: 70 * s, Lifetime: 60 * s, MustRevalidate: true}, "max-stale", UseRevalidate},
		{"swr", Stored{Age: 70 * s, Lifetime: 60 * s, SWR: 30 * s}, "", UseStaleRevalidate},
		{"swr past", Stored{Age: 100 * s, Lifetime: 60 * s, SWR: 30 * s}, "", UseRevalidate},
	} {
		if got := Reuse(tc.st, cc(tc.req)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStaleIfError(t *testing.T) {
	s := time.Second
	if !StaleIfError(Stored{Age: 70 * s, Lifetime: 60 * s, SIE: 30 * s}, cc()) {
		t.Error("inside the window refused")
	}
	if StaleIfError(Stored{Age: 100 * s, Lifetime: 60 * s, SIE: 30 * s}, cc()) {
		t.Error("past the window served")
	}
	if !StaleIfError(Stored{Age: 100 * s, Lifetime: 60 * s}, cc("stale-if-error=60")) {
		t.Error("request's stale-if-error ignored")
	}
	if StaleIfError(Stored{Age: 70 * s, Lifetime: 60 * s, SIE: 30 * s, MustRevalidate: true}, cc()) {
		t.Error("must-revalidate ignored")
	}
	swr, sie := StaleWindows(cc("max-age=1, must-revalidate, stale-if-error=60"), &CacheRules{StaleIfError: Duration(time.Hour)})
	if swr != 0 || sie != 0 {
		t.Error("windows past must-revalidate")
	}
	_, sie = StaleWindows(cc("max-age=1"), &CacheRules{StaleIfError: Duration(time.Hour)})
	if sie != time.Hour {
		t.Error("route default ignored")
	}
}
