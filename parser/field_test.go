package parser

import (
	"strings"
	"testing"
)

// Del removes every field with any of the names, whatever their case,
// keeps the others in order, and with no names leaves the list as it is.
func TestFieldsDel(t *testing.T) {
	list := func(fs Fields) string {
		var b strings.Builder
		for _, f := range fs {
			b.WriteString(string(f.Name) + "=" + string(f.Value) + " ")
		}
		return b.String()
	}
	mk := func() Fields {
		return Fields{}.Add("Age", "1").Add("Vary", "a").Add("Set-Cookie", "x").
			Add("ETag", `"e"`).Add("set-cookie", "y").Add("AGE", "2")
	}
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, `Age=1 Vary=a Set-Cookie=x ETag="e" set-cookie=y AGE=2 `},
		{[]string{"age"}, `Vary=a Set-Cookie=x ETag="e" set-cookie=y `},
		{[]string{"set-cookie", "age", "etag"}, `Vary=a `},
		{[]string{"x-absent", "vary"}, `Age=1 Set-Cookie=x ETag="e" set-cookie=y AGE=2 `},
	} {
		fs := mk()
		got := fs.Del(tc.names...)
		if list(got) != tc.want {
			t.Errorf("Del(%q) = %s, want %s", tc.names, list(got), tc.want)
		}
		// What Del dropped is cleared, so the backing array keeps no
		// reference to it.
		for _, f := range fs[len(got):] {
			if f.Name != nil || f.Value != nil {
				t.Errorf("Del(%q) left %s=%s past the end", tc.names, f.Name, f.Value)
			}
		}
	}
}

// A buffer that fields were appended to, some deleted, comes out of
// ClearUsed as clear as a new one, whether or not it was used whole.
func TestClearUsed(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4} {
		buf := make([]Field, 4)
		fs := Fields(buf[:0])
		for i := 0; i < n; i++ {
			fs = fs.Add("X-"+string(rune('a'+i)), "v")
		}
		fs = fs.Del("x-b")
		ClearUsed(buf)
		for i, f := range buf {
			if f.Name != nil || f.Value != nil {
				t.Errorf("%d fields used: field %d left as %q: %q", n, i, f.Name, f.Value)
			}
		}
	}
}
