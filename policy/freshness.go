package policy

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// Heuristic freshness (RFC 9111 §4.2.2): a fraction of the time since
// Last-Modified, never more than HeuristicMax (a day, past which RFC 7234
// asked caches to warn, and an operator would be surprised).
const (
	HeuristicFraction = 10 // percent of Date − Last-Modified
	HeuristicMax      = 24 * time.Hour
)

// HeuristicallyCacheable reports whether status may be stored and given a
// heuristic lifetime without explicit freshness (RFC 9110 §15.1).
func HeuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus lists the statuses whose caching semantics accel
// implements; must-understand responses with any other status are not
// stored (RFC 9111 §5.2.2.3).
func understoodStatus(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// The three forms of HTTP-date (RFC 9110 §5.6.7); IMFFixdate is the one to
// generate.
const (
	IMFFixdate = parser.IMFFixdate
	rfc850Date = "Monday, 02-Jan-06 15:04:05 GMT"
	asctime    = "Mon Jan _2 15:04:05 2006"
)

// ParseHTTPDate parses an HTTP-date in any of its three forms (RFC 9110
// §5.6.7). ok is false for anything else, which callers treat as a date in
// the past where that is the safe reading (an invalid Expires, RFC 9111
// §5.3). A cache matches dates case-insensitively (RFC 9111 §4.2), but
// otherwise the grammar is strict: time.Parse also takes one-digit hours,
// runs of spaces and a weekday that is not the date's, so a date must
// print back as it came.
func ParseHTTPDate(b []byte) (t time.Time, ok bool) {
	if t, ok := parseIMFFixdate(b); ok {
		return t, true
	}
	return parseHTTPDateLayouts(b)
}

// parseIMFFixdate reads the form every current origin sends, without
// allocating: a miss parses its Date and Expires. false sends the date to
// parseHTTPDateLayouts, which has the last word.
func parseIMFFixdate(b []byte) (time.Time, bool) {
	if len(b) != len(IMFFixdate) || b[3] != ',' || b[4] != ' ' || b[7] != ' ' || b[11] != ' ' ||
		b[16] != ' ' || b[19] != ':' || b[22] != ':' || b[25] != ' ' || lower3(b[26:]) != gmt {
		return time.Time{}, false
	}
	day, ok1 := digits(b[5:7])
	year, ok2 := digits(b[12:16])
	hour, ok3 := digits(b[17:19])
	minute, ok4 := digits(b[20:22])
	sec, ok5 := digits(b[23:25])
	month := 1 + slices.Index(months[:], lower3(b[8:11]))
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || month == 0 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	// A day past the month's end does not exist; a weekday must be the
	// date's.
	if day > daysIn(month, year) {
		return time.Time{}, false
	}
	days := daysSinceEpoch(year, month, day)
	if lower3(b[:3]) != weekdays[(days%7+11)%7] {
		return time.Time{}, false
	}
	return time.Unix(days*86400+int64(hour*3600+minute*60+sec), 0).UTC(), true
}

// The names an IMF-fixdate holds, as lower3 packs them.
var (
	gmt    = lower3([]byte("GMT"))
	months = [...]uint32{
		lower3([]byte("Jan")), lower3([]byte("Feb")), lower3([]byte("Mar")), lower3([]byte("Apr")),
		lower3([]byte("May")), lower3([]byte("Jun")), lower3([]byte("Jul")), lower3([]byte("Aug")),
		lower3([]byte("Sep")), lower3([]byte("Oct")), lower3([]byte("Nov")), lower3([]byte("Dec")),
	}
	weekdays = [...]uint32{
		lower3([]byte("Sun")), lower3([]byte("Mon")), lower3([]byte("Tue")), lower3([]byte("Wed")),
		lower3([]byte("Thu")), lower3([]byte("Fri")), lower3([]byte("Sat")),
	}
)

// lower3 packs three bytes into a word, letters lower-cased, so that a
// name is matched case-insensitively in one comparison. Setting bit 0x20
// changes other bytes too, but none of them into a letter, and every
// name compared with is letters.
func lower3(b []byte) uint32 {
	return uint32(b[0]|0x20)<<16 | uint32(b[1]|0x20)<<8 | uint32(b[2]|0x20)
}

// daysIn is the length of month in year of the proleptic Gregorian
// calendar, as time.Date counts.
func daysIn(month, year int) int {
	switch {
	case month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0):
		return 29
	case month == 2:
		return 28
	case month == 4 || month == 6 || month == 9 || month == 11:
		return 30
	}
	return 31
}

// daysSinceEpoch counts the days from 1970-01-01 to year-month-day, for a
// year from 0 to 9999: the date is read from a year starting in March, so
// that a leap day ends it, and eras of 400 years repeat exactly (146 097
// days). It is time.Date's arithmetic without its generality, a tenth of
// its cost, paid twice by every store (Date is read for the age and for
// the lifetime).
func daysSinceEpoch(year, month, day int) int64 {
	if month <= 2 {
		year--
	}
	year += 400 // year 0's January and February fall in era 0
	era, yoe := year/400, year%400
	doy := (153*((month+9)%12)+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era-1)*146097 + int64(doe) - 719468
}

// digits reads b as a decimal number of exactly len(b) digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseHTTPDateLayouts parses any of the three forms with time.Parse.
func parseHTTPDateLayouts(b []byte) (t time.Time, ok bool) {
	s := string(b)
	// Upper-cased, the literal GMT of the layouts matches any case;
	// time.Parse folds day and month names itself.
	u := strings.ToUpper(s)
	for _, layout := range [...]string{IMFFixdate, rfc850Date, asctime} {
		if t, err := time.Parse(layout, u); err == nil && strings.EqualFold(t.Format(layout), s) {
			return t, true
		}
	}
	return time.Time{}, false
}

// Storable decides whether a response to a GET may be stored by a shared
// cache under rules (RFC 9111 §3, §3.5). reason names the first rule that
// refused it, for logs and Cache-Status details. The caller strips the
// fields named by a qualified private directive and, when StoreSetCookie
// allows storing, Set-Cookie.
func Storable(req parser.Fields, reqCC CacheControl, status int, resp parser.Fields, cc CacheControl, rules *CacheRules) (ok bool, reason string) {
	switch {
	case status < 200:
		return false, "not-final"
	case status == 206 || status == 304:
		return false, "partial"
	case cc.MustUnderstand && !understoodStatus(status):
		return false, "must-understand"
	case cc.NoStore && !(cc.MustUnderstand && understoodStatus(status)):
		return false, "no-store"
	case reqCC.NoStore:
		return false, "request-no-store"
	case cc.Private:
		return false, "private"
	case req.Has("authorization") && !cc.Public && cc.SMaxAge < 0 && !cc.MustRevalidate:
		return false, "authorization"
	case resp.Has("set-cookie") && !rules.StoreSetCookie:
		return false, "set-cookie"
	}
	for _, f := range resp {
		if parser.EqualFold(f.Name, "vary") && parser.HasToken(f.Value, "*") {
			return false, "vary-star"
		}
	}
	if cc.Public || cc.MaxAge >= 0 || cc.SMaxAge >= 0 || (!cc.Targeted && resp.Has("expires")) ||
		HeuristicallyCacheable(status) || rules.TTLOverride > 0 {
		return true, ""
	}
	return false, "no-freshness"
}

// Lifetime is the freshness lifetime of a response received at received
// (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires − Date, else a
// heuristic for statuses that allow one, else the route's DefaultTTL.
// The route's TTLOverride replaces the result and its TTLCap bounds it.
// heuristic reports that the origin gave no explicit lifetime.
func Lifetime(status int, resp parser.Fields, cc CacheControl, rules *CacheRules, received time.Time) (lifetime time.Duration, heuristic bool) {
	date, ok := ParseHTTPDate(resp.Get("date"))
	if !ok {
		date = received
	}
	switch {
	case rules.TTLOverride > 0:
		lifetime = rules.TTLOverride.D()
	case cc.SMaxAge >= 0:
		lifetime = cc.SMaxAge
	case cc.MaxAge >= 0:
		lifetime = cc.MaxAge
	case !cc.Targeted && resp.Has("expires"):
		if exp, ok := ParseHTTPDate(resp.Get("expires")); ok && exp.After(date) {
			lifetime = exp.Sub(date)
		}
	case HeuristicallyCacheable(status):
		heuristic = true
		if lm, ok := ParseHTTPDate(resp.Get("last-modified")); ok && date.After(lm) {
			lifetime = min(date.Sub(lm)*HeuristicFraction/100, HeuristicMax)
		} else {
			lifetime = rules.DefaultTTL.D()
		}
	}
	if rules.TTLCap > 0 {
		lifetime = min(lifetime, rules.TTLCap.D())
	}
	return lifetime, heuristic
}

// InitialAge is the corrected_initial_age of RFC 9111 §4.2.3 for a response
// with the given Date and Age field values (nil when absent) whose request
// was sent at requested and which arrived at received. The current age of
// a stored response is InitialAge + (now − received).
func InitialAge(date, age []byte, requested, received time.Time) time.Duration {
	var apparent time.Duration
	if d, ok := ParseHTTPDate(date); ok && received.After(d) {
		apparent = received.Sub(d)
	}
	// Of a list-based Age only the first member counts; an Age that is
	// then not delta-seconds (junk after the number, a sign) is ignored,
	// not a reason to refuse the response (RFC 9111 §5.1); one too large
	// to represent is 2^31 (§1.2.2).
	if i := bytes.IndexByte(age, ','); i >= 0 {
		age = age[:i]
	}
	age = bytes.Trim(age, " \t")
	var ageValue time.Duration
	if len(age) > 0 && bytes.IndexFunc(age, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		ageValue = parseDelta(string(age))
	}
	corrected := ageValue + max(received.Sub(requested), 0)
	return max(apparent, corrected)
}

// MustRevalidate reports whether a stale response may never be served
// without validation: must-revalidate, proxy-revalidate, or s-maxage, which
// implies proxy-revalidate for a shared cache (RFC 9111 §5.2.2.10).
func MustRevalidate(cc CacheControl) bool {
	return cc.MustRevalidate || cc.ProxyRevalidate || cc.SMaxAge >= 0
}

// StaleWindows are how long past its lifetime a response may be served
// while it is revalidated in the background (swr) and when the origin
// fails (sie): the response's RFC 5861 directives, else the route's
// defaults. A response that must be revalidated gets neither.
func StaleWindows(cc CacheControl, rules *CacheRules) (swr, sie time.Duration) {
	if MustRevalidate(cc) || cc.NoCache {
		return 0, 0
	}
	swr, sie = rules.StaleWhileRevalidate.D(), rules.StaleIfError.D()
	if cc.StaleWhileRevalidate >= 0 {
		swr = cc.StaleWhileRevalidate
	}
	if cc.StaleIfError >= 0 {
		sie = cc.StaleIfError
	}
	return swr, sie
}

// Stored is what a reuse decision needs to know about a stored response.
type Stored struct {
	Age, Lifetime time.Duration
	// SWR and SIE are the windows StaleWindows gave the response.
	SWR, SIE time.Duration
	// NoCache is the response's no-cache: every reuse is validated first.
	NoCache        bool
	MustRevalidate bool
}

// Use is how a stored response may answer a request.
type Use int

const (
	// UseFresh serves the stored response as it is.
	UseFresh Use = iota
	// UseStale serves a stale response the request's max-stale accepts.
	UseStale
	// UseStaleRevalidate serves a stale response at once and revalidates
	// it in the background (RFC 5861 stale-while-revalidate).
	UseStaleRevalidate
	// UseRevalidate forwards a conditional request: the response is stale
	// or has no-cache (Cache-Status fwd=stale).
	UseRevalidate
	// UseRevalidateRequest forwards a conditional request because the
	// request's directives refused a usable response (fwd=request).
	UseRevalidateRequest
)

// Reuse decides how a stored response answers a request whose directives
// are req (RFC 9111 §4, §4.2.4, §5.2.1; RFC 5861 §3).
func Reuse(s Stored, req CacheControl) Use {
	fresh := s.Age < s.Lifetime
	switch {
	case req.NoCache:
		return UseRevalidateRequest
	case s.NoCache:
		return UseRevalidate
	case req.MaxAge >= 0 && s.Age > req.MaxAge:
		return UseRevalidateRequest
	case fresh && req.MinFresh >= 0 && s.Lifetime-s.Age < req.MinFresh:
		return UseRevalidateRequest
	case fresh:
		return UseFresh
	case s.MustRevalidate:
		return UseRevalidate
	}
	staleness := s.Age - s.Lifetime
	switch {
	case req.MaxStale >= 0 && staleness <= req.MaxStale:
		return UseStale
	case req.MinFresh >= 0:
		// The client asked for freshness left; a stale answer has none.
		return UseRevalidateRequest
	case staleness <= s.SWR:
		return UseStaleRevalidate
	}
	return UseRevalidate
}

// StaleIfError reports whether a stale response may answer a request when
// its revalidation failed (origin unreachable or a 5xx): within the
// response's or route's stale-if-error window, or the request's own
// (RFC 5861 §4), and never past must-revalidate or no-cache.
func StaleIfError(s Stored, req CacheControl) bool {
	if s.MustRevalidate || s.NoCache {
		return false
	}
	window := max(s.SIE, req.StaleIfError)
	return s.Age-s.Lifetime <= window
}
