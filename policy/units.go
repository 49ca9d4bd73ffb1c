package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as Go duration text ("90s",
// "5m", "1h30m"), so a config reads like the logs print it.
type Duration time.Duration

// UnmarshalYAML accepts duration text; a bare number is refused because its
// unit would be a guess.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return typeError(n, "%q is not a duration (like 30s, 5m, 1h)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// typeError reports a bad scalar the way yaml.v3 reports its own, so that
// decoding goes on and every bad value is named in one message.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size written in YAML as a number with an optional binary
// unit: 512, 64KiB, 100MiB, 2GiB (KB, MB and GB mean the same powers of two,
// as nginx reads them).
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// UnmarshalYAML parses the number and unit.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return typeError(n, "%v", err)
	}
	*s = v
	return nil
}

// ParseByteSize parses a size such as "64KiB" or "1048576".
func ParseByteSize(text string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(text))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (like 512, 64KiB, 100MiB)", text)
	}
	return ByteSize(v * mult), nil
}
