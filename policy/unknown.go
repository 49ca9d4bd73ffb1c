package policy

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/accel-proxy/accel/internal/cfgerr"
	"go.yaml.in/yaml/v3"
)

// unknownKey rewrites yaml.v3's "field X not found in type T" for the key
// on line into what an operator needs: the key's YAML path and, when a
// known key is close, "did you mean" (nginx and HAProxy both answer a typo
// that way). ok is false when the key cannot be found in root.
func unknownKey(root *yaml.Node, line int, name string) (msg string, ok bool) {
	path, found := findKey(root, line, name, nil)
	if !found {
		return "", false
	}
	msg = cfgerr.Path(path...) + ": unknown field"
	known := keysAt(reflect.TypeFor[Config](), path[:len(path)-1])
	if best := closest(name, known); best != "" {
		msg += ", did you mean " + strconv.Quote(best) + "?"
	} else if len(known) > 0 {
		msg += " (known here: " + strings.Join(known, ", ") + ")"
	}
	return msg, true
}

// findKey returns the path of the mapping key name on line.
func findKey(n *yaml.Node, line int, name string, path []any) ([]any, bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p, ok := findKey(c, line, name, path); ok {
				return p, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, ok := findKey(c, line, name, append(path[:len(path):len(path)], i)); ok {
				return p, true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			kp := append(path[:len(path):len(path)], k.Value)
			if k.Line == line && k.Value == name {
				return kp, true
			}
			if p, ok := findKey(n.Content[i+1], line, name, kp); ok {
				return p, true
			}
		}
	}
	return nil, false
}

// keysAt lists the YAML keys of the struct found by following path from t.
func keysAt(t reflect.Type, path []any) []string {
	for _, p := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch p.(type) {
		case int:
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		case string:
			if t.Kind() != reflect.Struct {
				return nil
			}
			f, ok := fieldByKey(t, p.(string))
			if !ok {
				return nil
			}
			t = f.Type
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if yamlKey(t.Field(i)) == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func yamlKey(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	return tag
}

// closest returns the known key nearest to name, if it is near enough to
// be a typo: at most a third of the name's letters differ.
func closest(name string, known []string) string {
	best, bestD := "", len(name)/3+1
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbours that turn a into b (optimal string alignment), the usual
// typos.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
