package parser

import (
	"bytes"
	"unsafe"
)

// Field is one header field line. Name and Value alias whatever buffer the
// field was parsed from or built in; Value carries no leading or trailing
// whitespace.
type Field struct {
	Name, Value []byte
}

// Fields is a header section in wire order. Lookups are case-insensitive on
// the name, as field names are (RFC 9110 §5.1).
type Fields []Field

// Get returns the value of the first field named name, or nil.
func (fs Fields) Get(name string) []byte {
	for i := range fs {
		if equalFold(fs[i].Name, name) {
			return fs[i].Value
		}
	}
	return nil
}

// Has reports whether a field named name is present.
func (fs Fields) Has(name string) bool {
	for i := range fs {
		if equalFold(fs[i].Name, name) {
			return true
		}
	}
	return false
}

// ClearUsed clears the fields in use in buf, a buffer that fields are
// appended to from its start and that is clear past them: the fields in
// use are a prefix, each with a name. A reused buffer is so cleared in the
// time its use took, not in its size: most of it is never used, and
// clearing it whole read cold cache lines.
func ClearUsed(buf []Field) {
	for i := range buf {
		if buf[i].Name == nil {
			return
		}
		buf[i] = Field{}
	}
}

// Del removes every field with one of the names, keeping the order of
// the others, in one pass over fs.
func (fs Fields) Del(names ...string) Fields {
	if len(names) == 0 {
		return fs
	}
	out := fs[:0]
	for _, f := range fs {
		if !f.named(names) {
			out = append(out, f)
		}
	}
	clear(fs[len(out):])
	return out
}

func (f *Field) named(names []string) bool {
	for _, n := range names {
		if equalFold(f.Name, n) {
			return true
		}
	}
	return false
}

// Add appends a field.
func (fs Fields) Add(name, value string) Fields {
	return append(fs, Field{Name: []byte(name), Value: []byte(value)})
}

// Set replaces every field named name with one field.
func (fs Fields) Set(name, value string) Fields {
	return fs.Del(name).Add(name, value)
}

// Clone returns a deep copy whose slices share one backing array, so the
// copy outlives the buffer the fields were parsed from.
func (fs Fields) Clone() Fields {
	n := 0
	for _, f := range fs {
		n += len(f.Name) + len(f.Value)
	}
	buf := make([]byte, 0, n)
	out := make(Fields, len(fs))
	for i, f := range fs {
		s := len(buf)
		buf = append(buf, f.Name...)
		out[i].Name = buf[s:len(buf):len(buf)]
		s = len(buf)
		buf = append(buf, f.Value...)
		out[i].Value = buf[s:len(buf):len(buf)]
	}
	return out
}

// EqualFold reports whether b equals the ASCII string s ignoring case.
func EqualFold(b []byte, s string) bool { return equalFold(b, s) }

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// HasToken reports whether the comma-separated list value holds token,
// compared case-insensitively (as in Connection or Transfer-Encoding).
func HasToken(value []byte, token string) bool {
	for len(value) > 0 {
		var item []byte
		if i := bytes.IndexByte(value, ','); i >= 0 {
			item, value = value[:i], value[i+1:]
		} else {
			item, value = value, nil
		}
		if equalFold(bytes.Trim(item, " \t"), token) {
			return true
		}
	}
	return false
}

// Alias views b as a string without copying it, for a string that is
// dropped before b's bytes change: a key looked up, a name matched, a
// field of a head that lives as long as its buffer.
func Alias(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
