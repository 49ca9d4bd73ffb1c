package policy

import (
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

func TestResponseCacheControl(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		fields   []string
		own      string
		maxAge   time.Duration
		noStore  bool
		targeted bool
	}{
		{[]string{"Cache-Control", "max-age=5"}, "", 5 * s, false, false},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=7"}, "", 7 * s, false, true},
		{[]string{"Cache-Control", "max-age=5", "cdn-cache-control", "no-store"}, "", -1, true, true},
		{[]string{"CDN-Cache-Control", "max-age=7", "Accel-Cache-Control", "max-age=9"}, "Accel-Cache-Control", 9 * s, false, true},
		{[]string{"CDN-Cache-Control", "max-age=7", "Accel-Cache-Control", "max-age=9;a=1, x=(1 \"b\" c);p"}, "Accel-Cache-Control", 9 * s, false, true},
		{[]string{"CDN-Cache-Control", "max-age=7", "Accel-Cache-Control", "max-age=9 x"}, "Accel-Cache-Control", 7 * s, false, true},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=-1"}, "", -1, false, true},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=1.5"}, "", -1, false, true},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", ""}, "", 5 * s, false, false},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=7, max-age=8"}, "", 8 * s, false, true},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=1234567890123456"}, "", 5 * s, false, false},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", "no-store=?2"}, "", 5 * s, false, false},
		{[]string{"Cache-Control", "max-age=5", "CDN-Cache-Control", "a=:aGk=:, b=?1, c=tok/x:y, d=\"q\\\"\""}, "", -1, false, true},
	} {
		var fs parser.Fields
		for i := 0; i+1 < len(tc.fields); i += 2 {
			fs = fs.Add(tc.fields[i], tc.fields[i+1])
		}
		cc := ResponseCacheControl(fs, tc.own)
		if cc.MaxAge != tc.maxAge || cc.NoStore != tc.noStore || cc.Targeted != tc.targeted {
			t.Errorf("%q own %q: max-age %v no-store %v targeted %v", tc.fields, tc.own, cc.MaxAge, cc.NoStore, cc.Targeted)
		}
	}
}
