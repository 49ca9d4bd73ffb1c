package h2

import "strconv"

// intern turns response field bytes into the strings hpack takes without
// allocating for the ones seen before: a stored response's fields repeat
// with every hit. One per connection, used under its mu. The maps grow
// with what the connection answers (an idle connection that answered a
// few responses keeps a few entries, not room for 64).
type intern struct {
	m       map[string]string
	scratch []byte
	ints    map[int64]string
}

// maxInterned bounds each map; a full one starts over.
const maxInterned = 1024

// str returns b as a string.
func (in *intern) str(b []byte, _ bool) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil {
		in.m = map[string]string{}
	}
	if len(in.m) >= maxInterned {
		clear(in.m)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// lower returns b lower-cased (HTTP/2 field names are, RFC 9113 §8.2).
func (in *intern) lower(b []byte) string {
	in.scratch = in.scratch[:0]
	for _, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		in.scratch = append(in.scratch, ch)
	}
	return in.str(in.scratch, false)
}

func (in *intern) int(n int64) string {
	if s, ok := in.ints[n]; ok {
		return s
	}
	if in.ints == nil {
		in.ints = map[int64]string{}
	}
	if len(in.ints) >= maxInterned {
		clear(in.ints)
	}
	s := strconv.FormatInt(n, 10)
	in.ints[n] = s
	return s
}
