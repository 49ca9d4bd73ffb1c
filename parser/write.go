package parser

// AppendFields appends fs in HTTP/1 wire form, one "Name: value\r\n" line
// per field, so that a head serialised once (a stored response's) is
// written by copying it.
func AppendFields(dst []byte, fs Fields) []byte {
	for _, f := range fs {
		dst = append(dst, f.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}
