package parser

// CheckHead applies ParseRequest's rules for the request-target, Host and
// field lines to a head that was not parsed from HTTP/1 bytes (the HTTP/2
// front's), so that both fronts hand on only what an HTTP/1.1 origin reads
// the same way: a :path with a space or a control byte would otherwise
// become a request line that each origin splits its own way.
func CheckHead(r *Request) error {
	if !isToken(r.Method) {
		return ErrBadMethod
	}
	if len(r.Target) == 0 {
		return ErrBadTarget
	}
	for _, c := range r.Target {
		if c <= ' ' || c >= 0x7f {
			return ErrBadTarget
		}
	}
	if _, err := checkTarget(r.Method, r.Target); err != nil {
		return err
	}
	if len(r.Host) > 0 && !validHostPort(r.Host, true, false) {
		return ErrBadHost
	}
	for _, f := range r.Fields {
		if !isToken(f.Name) {
			return ErrBadFieldName
		}
		for _, c := range f.Value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return ErrCtl
			}
		}
	}
	return nil
}
