//go:build !unix

package upstream

// peek cannot look at a socket without reading it here: an idle
// connection counts as readable, so it is redialled rather than trusted.
func (oc *originConn) peek(uintptr) bool {
	oc.readable = true
	return true
}
