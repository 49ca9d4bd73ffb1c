// Package cfgerr carries the place of a refused config value from the
// package that owns the value's rules to the wiring that knows the file.
//
// A package checks its own Config and names the field the way the config
// file spells it, relative to the package's own section ("servers", 1,
// "address"); accel's wiring prefixes the section's path and the file's
// line, so the operator reads "accel.yaml:8: pools[0].servers[1].address:
// ..." while the rule and its message stay with the package.
package cfgerr

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is a config value a package refused.
type Error struct {
	// Path is the field's place within the package's section: keys as the
	// file spells them (strings), list indexes (ints).
	Path []any
	// Msg says what is wrong, for the operator.
	Msg string
}

func (e *Error) Error() string {
	if len(e.Path) == 0 {
		return e.Msg
	}
	return Path(e.Path...) + ": " + e.Msg
}

// Errorf returns an *Error for the field at path.
func Errorf(path []any, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Path renders a path the way the YAML reads: routes[2].pool.
func Path(path ...any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(p) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}
