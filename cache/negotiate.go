package cache

import (
	"bytes"
	"slices"
	"strconv"
)

// acceptMember is one member of an Accept-family list (RFC 9110 §12.4.2):
// its value without the weight, and the weight in thousandths.
type acceptMember struct {
	value []byte
	q     int
}

// parseAccept splits an Accept-family field value into members, lower-cased
// and without whitespace, each with its weight (1000 when absent). A
// member whose weight does not parse keeps it in value with q 1000, so that
// two different malformed values never select one variant.
func parseAccept(v []byte) []acceptMember {
	var out []acceptMember
	for item := range bytes.SplitSeq(v, []byte{','}) {
		var m acceptMember
		m.q = 1000
		for i, p := range bytes.Split(item, []byte{';'}) {
			p = bytes.ToLower(bytes.Trim(p, " \t"))
			if i == 0 {
				m.value = p
				continue
			}
			name, val, _ := bytes.Cut(p, []byte{'='})
			name, val = bytes.Trim(name, " \t"), bytes.Trim(val, " \t")
			if string(name) == "q" {
				if q, ok := parseQ(val); ok {
					m.q = q
					continue
				}
			}
			m.value = append(append(append(m.value, ';'), name...), '=')
			m.value = append(m.value, val...)
		}
		if len(m.value) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// parseQ reads a weight (RFC 9110 §12.4.2: "0" to "1" with at most three
// decimals) in thousandths.
func parseQ(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	whole := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return whole, true
	}
	if v[1] != '.' {
		return 0, false
	}
	frac, scale := 0, 100
	for _, c := range v[2:] {
		if c < '0' || c > '9' || (whole == 1000 && c != '0') {
			return 0, false
		}
		frac += int(c-'0') * scale
		scale /= 10
	}
	return whole + frac, true
}

// normalAccept is the form of an Accept-family value under which requests
// that ask for the same thing select the same variant: members lower-cased
// without whitespace, weights written shortest ("q=0.5", none for 1),
// duplicates dropped, ordered by weight and then by value. A client's
// order among equal weights expresses no preference (RFC 9110 §12.4.2).
func normalAccept(v []byte) []byte {
	ms := parseAccept(v)
	slices.SortStableFunc(ms, func(a, b acceptMember) int {
		if a.q != b.q {
			return b.q - a.q
		}
		return bytes.Compare(a.value, b.value)
	})
	ms = slices.CompactFunc(ms, func(a, b acceptMember) bool { return bytes.Equal(a.value, b.value) })
	var out []byte
	for i, m := range ms {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, m.value...)
		if m.q != 1000 {
			out = append(out, ";q="...)
			out = appendQ(out, m.q)
		}
	}
	return out
}

func appendQ(b []byte, q int) []byte {
	if q == 0 {
		return append(b, '0')
	}
	s := strconv.Itoa(1000 + q)[1:] // three digits
	for len(s) > 0 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return append(append(b, "0."...), s...)
}
