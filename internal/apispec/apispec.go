// Package apispec validates simulated API traffic against the official
// OpenAPI descriptions of GitHub, Neon and Cloudflare.
//
// The descriptions are embedded as subsets (specs/<name>.json) holding only the
// paths the simulators serve; they are cut from the official files by
// `go run ./internal/apispec/specsubset` (see specs/<name>.paths). Fidelity is
// the point: a request the real API would reject because it breaks the
// description must be rejected by the simulator too.
//
// Routing is done here rather than by kin-openapi's routers because GitHub
// has parameters that may contain '/' (contents/{path}, git/ref/{ref}, …) and
// path pairs that differ only in a variable's name, both of which those
// routers refuse.
package apispec

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed specs
var specFiles embed.FS

// Spec is a parsed, validated API description with its routes compiled.
// It is immutable and safe for concurrent use.
type Spec struct {
	name   string
	doc    *openapi3.T
	routes []*route
}

// Name is the API's name as given to Load ("github", "neon", "cloudflare").
func (s *Spec) Name() string { return s.name }

// Doc is the parsed OpenAPI document; callers must not modify it.
func (s *Spec) Doc() *openapi3.T { return s.doc }

var (
	loadOnce sync.Once
	loaders  map[string]func() (*Spec, error)
)

// Load returns the embedded description of the named API ("github", "neon"
// or "cloudflare"). It is parsed once per process.
func Load(name string) (*Spec, error) {
	loadOnce.Do(func() {
		loaders = map[string]func() (*Spec, error){}
		entries, _ := fs.ReadDir(specFiles, "specs")
		for _, e := range entries {
			n, ok := strings.CutSuffix(e.Name(), ".json")
			if !ok {
				continue
			}
			loaders[n] = sync.OnceValues(func() (*Spec, error) { return parse(n) })
		}
	})
	load, ok := loaders[name]
	if !ok {
		known := make([]string, 0, len(loaders))
		for n := range loaders {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("apispec: no embedded description %q (have %s); add internal/apispec/specs/%s.paths and run go run ./internal/apispec/specsubset", name, strings.Join(known, ", "), name)
	}
	return load()
}

// MustLoad is Load for tests and program start-up, where a missing embedded
// file is a build mistake.
func MustLoad(name string) *Spec {
	s, err := Load(name)
	if err != nil {
		panic(err)
	}
	return s
}

func parse(name string) (*Spec, error) {
	data, err := specFiles.ReadFile("specs/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("apispec: %w", err)
	}
	return Parse(name, data)
}

// Parse builds a Spec from an OpenAPI 3.0 document, for tests that need a
// hand-written description; simulators use Load.
func Parse(name string, data []byte) (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("apispec: load %s: %w", name, err)
	}
	if err := doc.Validate(context.Background(), ValidationOptions()...); err != nil {
		return nil, fmt.Errorf("apispec: validate %s: %w", name, err)
	}
	s := &Spec{name: name, doc: doc}
	for _, tmpl := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(tmpl)
		for method, op := range item.Operations() {
			s.routes = append(s.routes, newRoute(method, tmpl, item, op))
		}
	}
	sortRoutes(s.routes)
	return s, nil
}

// ValidationOptions are the options used to check a description document
// when it is loaded. Examples and defaults are not checked: the official
// descriptions carry some that contradict their own schemas (Cloudflare),
// which says nothing about the requests a client may send.
func ValidationOptions() []openapi3.ValidationOption {
	return []openapi3.ValidationOption{
		openapi3.SetRegexCompiler(CompileRegex),
		openapi3.DisableExamplesValidation(),
		openapi3.DisableSchemaDefaultsValidation(),
	}
}

// repeatRE matches a bounded repeat such as {1,60} or {0,99}.
var repeatRE = regexp.MustCompile(`\{(\d+),(\d+)\}`)

// LoosenRepeats replaces bounded repeats {m,n} with {m,} so that patterns
// whose nested repeats exceed Go's limit of 1000 compile. Neon's
// `^([a-z0-9-]{1,60}(,[a-z0-9-]{1,60}){0,99})?$` is the known case. The
// result accepts a superset of the original language; lengths are rarely
// what a simulator needs to check.
func LoosenRepeats(pattern string) string {
	return repeatRE.ReplaceAllString(pattern, "{$1,}")
}

// CompileRegex compiles OpenAPI patterns with Go's regexp, loosening bounded
// repeats when the pattern exceeds Go's repeat limit instead of failing the
// whole document.
func CompileRegex(expr string) (openapi3.RegexMatcher, error) {
	re, err := regexp.Compile(expr)
	if err == nil {
		return re, nil
	}
	if re2, err2 := regexp.Compile(LoosenRepeats(expr)); err2 == nil {
		return re2, nil
	}
	return nil, err
}
