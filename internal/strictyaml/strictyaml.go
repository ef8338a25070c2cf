// Package strictyaml decodes YAML into Go structs strictly: a key the struct
// does not know, a value of the wrong type or a key given twice is an error
// naming the file, line and dotted key. Both the bot's config and the
// repository's pipeline file are read this way, because a deploy tool that
// silently ignores a misspelt setting deploys the wrong thing.
package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode parses data (named file in errors) into v, a pointer to a struct
// whose fields carry yaml tags. Fields absent from the document keep their
// values, so v can hold defaults. It returns the line of every key seen,
// by dotted path ("server.address", "workers[0].name"), for errors found
// later by validation; err joins every problem found.
func Decode(file string, data []byte, v any) (Lines, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	d := &decoder{file: file, lines: Lines{}}
	if root.Kind == 0 { // an empty document: nothing to change
		return d.lines, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("strictyaml: Decode needs a non-nil pointer, got %T", v)
	}
	d.decode(&root, "", rv.Elem())
	return d.lines, errors.Join(d.errs...)
}

// Lines maps dotted keys to the line they are on.
type Lines map[string]int

// Errorf returns an Error for key, at its line when the key was in the file.
func (l Lines) Errorf(file, key, format string, args ...any) *Error {
	return &Error{File: file, Line: l[key], Key: key, Msg: fmt.Sprintf(format, args...)}
}

// decoder walks a YAML document and a Go struct together.
type decoder struct {
	file  string
	errs  []error
	lines Lines
}

func (d *decoder) fail(line int, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Error is a problem in a YAML file.
type Error struct {
	File string
	Line int // 0 when the key is absent from the file
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(n *yaml.Node, key string, v reflect.Value) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		d.fail(n.Line, key, "YAML aliases are not supported")
		return
	}
	if _, ok := d.lines[key]; !ok { // a key's own line was recorded by its parent
		d.lines[key] = n.Line
	}

	// Types with their own YAML form (durations, secrets) decode themselves.
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if n.Kind == yaml.SequenceNode { // its items' lines, for errors the validation finds
			for i, item := range n.Content {
				d.lines[fmt.Sprintf("%s[%d]", key, i)] = item.Line
			}
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n.Line, key, "%s", cleanYAMLError(err))
		}
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		if n.Tag == "!!null" {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, key, v.Elem())
	case reflect.Struct:
		d.decodeStruct(n, key, v)
	case reflect.Slice:
		if n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, key, "expected a list, found %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, fmt.Sprintf("%s[%d]", key, i), s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, key, "expected a mapping, found %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			k := reflect.New(v.Type().Key()).Elem()
			if err := kn.Decode(k.Addr().Interface()); err != nil {
				d.fail(kn.Line, key, "bad key %q: %s", kn.Value, cleanYAMLError(err))
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.lines[key+"."+kn.Value] = kn.Line
			d.decode(vn, key+"."+kn.Value, elem)
			m.SetMapIndex(k, elem)
		}
		v.Set(m)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, key, "expected a %s, found %s", kindName(v.Kind()), describe(n))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n.Line, key, "expected a %s, found %q", kindName(v.Kind()), n.Value)
		}
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, key string, v reflect.Value) {
	if n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, key, "expected a mapping, found %s", describe(n))
		return
	}
	fields := map[string]int{}
	var names []string
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		child := join(key, kn.Value)
		idx, ok := fields[kn.Value]
		if !ok {
			d.fail(kn.Line, child, "unknown key%s", suggest(kn.Value, names))
			continue
		}
		if seen[kn.Value] {
			d.fail(kn.Line, child, "key given twice")
			continue
		}
		seen[kn.Value] = true
		d.lines[child] = kn.Line
		d.decode(vn, child, v.Field(idx))
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// suggest names the closest known key, for typos like "adress".
func suggest(got string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := levenshtein(got, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sort.Strings(known)
	return fmt.Sprintf(" (known keys: %s)", strings.Join(known, ", "))
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	default:
		return "string"
	}
}

// cleanYAMLError drops yaml.v3's "yaml: unmarshal errors:\n  line N:" prefix:
// the decoder adds file and line itself.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
			return rest
		}
		return msg
	}
	return err.Error()
}
