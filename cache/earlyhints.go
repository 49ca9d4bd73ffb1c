package cache

import (
	"bytes"

	"github.com/accel-proxy/accel/parser"
)

// earlyHints sends, before the origin is asked, a 103 Early Hints (RFC
// 8297) with the Link fields of the stored version o that ask the client
// to preload or preconnect: they most likely hold for the version the
// origin is about to send, and the client can start fetching them now.
// The route's EarlyHints decides for which responses.
func (k *call) earlyHints(o *object) {
	switch k.rules.EarlyHints {
	case "off":
		return
	case "", "html":
		ct := o.fields.Get("content-type")
		if len(ct) < 9 || !parser.EqualFold(ct[:9], "text/html") {
			return
		}
	}
	var links parser.Fields
	for _, f := range o.fields {
		if parser.EqualFold(f.Name, "link") && hintLink(f.Value) {
			links = append(links, f)
		}
	}
	if len(links) > 0 {
		k.w.WriteInterim(103, links)
	}
}

// hintLink reports whether a Link field value holds a link whose rel
// names preload or preconnect, the relations Early Hints are for.
func hintLink(v []byte) bool {
	for link := range entityTags(v) { // commas outside quotes
		for _, param := range bytes.Split(link, []byte{';'})[1:] {
			name, val, _ := bytes.Cut(bytes.TrimSpace(param), []byte{'='})
			if !parser.EqualFold(bytes.TrimSpace(name), "rel") {
				continue
			}
			for rel := range bytes.FieldsSeq(bytes.Trim(bytes.TrimSpace(val), `"`)) {
				if parser.EqualFold(rel, "preload") || parser.EqualFold(rel, "preconnect") {
					return true
				}
			}
		}
	}
	return false
}
