package policy

import "strings"

// checkCacheRules validates a route's cache section; path is its YAML
// path.
func checkCacheRules(k *checker, path []any, r *CacheRules) {
	if f := r.TargetedField; f != "" {
		valid := true
		for i := 0; i < len(f); i++ {
			valid = valid && tchar(f[i])
		}
		switch {
		case !valid:
			k.failf(append(path, "targeted_field"), "%q is not a field name", f)
		case strings.EqualFold(f, "cache-control"):
			k.failf(append(path, "targeted_field"), "Cache-Control is not a targeted field (RFC 9213)")
		}
	}
	checkCompress(k, append(path, "compress"), &r.Compress)
	switch r.EarlyHints {
	case "", "html", "all", "off":
	default:
		k.failf(append(path, "early_hints"), "%q is not html, all or off", r.EarlyHints)
	}
	full := r.WithDefaults()
	full.full = nil
	r.full = &full
}
