package policy

import (
	"strings"

	"github.com/accel-proxy/accel/parser"
)

// CompressRules say how the cache compresses the responses of a route.
// Each object is compressed once per encoding, when a client first asks
// for that encoding, and the result stored beside it: a compressed hit
// costs what a plain hit costs.
type CompressRules struct {
	// Enabled turns compression on. The origin is then asked without
	// Accept-Encoding, so that it sends the identity body the cache
	// compresses, and one fetch serves every encoding.
	Enabled bool `yaml:"enabled"`
	// Encodings are the codings offered, in order of preference among
	// equal client weights: "br", "zstd", "gzip". Default all three in
	// that order.
	Encodings []string `yaml:"encodings"`
	// Types are the compressible media types: exact ("application/json")
	// or a whole top-level type ("text/*"). Default DefaultCompressTypes.
	Types []string `yaml:"types"`
	// MinSize is the smallest body compressed; smaller ones would gain
	// little against the coding's framing. Default 256 bytes.
	MinSize ByteSize `yaml:"min_size"`
	// Levels per coding: gzip 1-9 (default 6), br 1-11 (default 6), zstd
	// 1-22 (default 3). The work is done once per object, so a higher
	// level than a proxy compressing every response could afford pays.
	Levels CompressLevels `yaml:"levels"`
}

// CompressLevels are the compression levels per coding; zero is the
// default.
type CompressLevels struct {
	Gzip int `yaml:"gzip"`
	Br   int `yaml:"br"`
	Zstd int `yaml:"zstd"`
}

// DefaultCompressTypes are the media types compressed when Types is empty:
// text and the structured text formats of the web.
var DefaultCompressTypes = []string{"text/*", "application/json", "application/javascript",
	"application/xml", "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
	"application/manifest+json", "application/ld+json", "application/wasm", "image/svg+xml",
	"image/x-icon", "font/ttf", "font/otf"}

// DefaultEncodings is the offer when Encodings is empty.
var DefaultEncodings = []string{"br", "zstd", "gzip"}

// WithDefaults fills the zero fields.
func (r CompressRules) WithDefaults() CompressRules {
	if len(r.Encodings) == 0 {
		r.Encodings = DefaultEncodings
	}
	if len(r.Types) == 0 {
		r.Types = DefaultCompressTypes
	}
	if r.MinSize <= 0 {
		r.MinSize = 256
	}
	if r.Levels.Gzip == 0 {
		r.Levels.Gzip = 6
	}
	if r.Levels.Br == 0 {
		r.Levels.Br = 6
	}
	if r.Levels.Zstd == 0 {
		r.Levels.Zstd = 3
	}
	return r
}

// Level is the configured level of coding enc.
func (l CompressLevels) Level(enc string) int {
	switch enc {
	case "gzip":
		return l.Gzip
	case "br":
		return l.Br
	}
	return l.Zstd
}

// Compressible reports whether a response of media type ct (a
// Content-Type value) is one of types.
func Compressible(ct []byte, types []string) bool {
	mt := ct
	for i, c := range ct {
		if c == ';' || c == ' ' {
			mt = ct[:i]
			break
		}
	}
	for _, t := range types {
		if top, ok := strings.CutSuffix(t, "/*"); ok {
			if len(mt) > len(top) && mt[len(top)] == '/' && parser.EqualFold(mt[:len(top)], top) {
				return true
			}
			continue
		}
		if parser.EqualFold(mt, t) {
			return true
		}
	}
	return false
}

func checkCompress(k *checker, path []any, r *CompressRules) {
	for i, e := range r.Encodings {
		if e != "br" && e != "zstd" && e != "gzip" {
			k.failf(append(path, "encodings", i), "%q is not br, zstd or gzip", e)
		}
	}
	for i, t := range r.Types {
		if !strings.Contains(t, "/") {
			k.failf(append(path, "types", i), "%q is not a media type (like text/html or text/*)", t)
		}
	}
	for _, l := range []struct {
		name      string
		v, lo, hi int
	}{{"gzip", r.Levels.Gzip, 1, 9}, {"br", r.Levels.Br, 1, 11}, {"zstd", r.Levels.Zstd, 1, 22}} {
		if l.v != 0 && (l.v < l.lo || l.v > l.hi) {
			k.failf(append(path, "levels", l.name), "%d is outside %d..%d", l.v, l.lo, l.hi)
		}
	}
}
