package apispec

import (
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// slashParams are the path parameters that may contain '/' unescaped. GitHub
// documents contents/{path}, git/ref/{ref}, branches/{branch},
// commits/{ref}/check-runs and compare/{basehead} this way; kin-openapi's
// routers cannot match them. They are tried only after no route matched
// with one segment per parameter, so they never shadow an exact route.
var slashParams = map[string]bool{"path": true, "ref": true, "branch": true, "basehead": true}

type segment struct {
	literal string // when param == "" and re == nil
	param   string
	// re matches a segment mixing literals and parameters, such as GitHub's
	// {base}...{head}; names are its parameters in order.
	re    *regexp.Regexp
	names []string
}

type route struct {
	method   string // upper case
	template string
	segs     []segment
	item     *openapi3.PathItem
	op       *openapi3.Operation
}

func (r *route) String() string { return r.method + " " + r.template }

func newRoute(method, template string, item *openapi3.PathItem, op *openapi3.Operation) *route {
	r := &route{method: strings.ToUpper(method), template: template, item: item, op: op}
	for _, s := range splitPath(template) {
		switch {
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && strings.Count(s, "{") == 1:
			r.segs = append(r.segs, segment{param: s[1 : len(s)-1]})
		case strings.Contains(s, "{"):
			r.segs = append(r.segs, mixedSegment(s))
		default:
			r.segs = append(r.segs, segment{literal: s})
		}
	}
	return r
}

// sortRoutes orders routes most specific first: at the first segment where
// two templates differ, a literal beats a parameter, so /projects/shared wins
// over /projects/{project_id}.
func sortRoutes(rs []*route) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i].segs, rs[j].segs
		for k := 0; k < len(a) && k < len(b); k++ {
			al, bl := a[k].param == "" && a[k].re == nil, b[k].param == "" && b[k].re == nil
			if al != bl {
				return al
			}
		}
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		if rs[i].template != rs[j].template {
			return rs[i].template < rs[j].template
		}
		return rs[i].method < rs[j].method
	})
}

func mixedSegment(s string) segment {
	var (
		expr  strings.Builder
		names []string
	)
	expr.WriteString("^")
	for s != "" {
		i := strings.IndexByte(s, '{')
		j := strings.IndexByte(s, '}')
		if i < 0 || j < i {
			expr.WriteString(regexp.QuoteMeta(s))
			break
		}
		expr.WriteString(regexp.QuoteMeta(s[:i]))
		names = append(names, s[i+1:j])
		expr.WriteString("(.+?)")
		s = s[j+1:]
	}
	expr.WriteString("$")
	return segment{re: regexp.MustCompile(expr.String()), names: names}
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// find returns the route for method and the escaped request path (server
// base path already removed), with its decoded path parameters. pathKnown
// reports whether some other method exists for that path.
func (s *Spec) find(method, escapedPath string) (r *route, params map[string]string, pathKnown bool) {
	raw := splitPath(escapedPath)
	segs := make([]string, len(raw))
	for i, seg := range raw {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return nil, nil, false
		}
		segs[i] = dec
	}
	for _, allowSlash := range []bool{false, true} {
		for _, rt := range s.routes {
			p, ok := matchSegs(rt.segs, segs, allowSlash)
			if !ok {
				continue
			}
			if rt.method == method {
				return rt, p, true
			}
			pathKnown = true
		}
		if pathKnown {
			return nil, nil, true
		}
	}
	return nil, nil, false
}

func matchSegs(tmpl []segment, segs []string, allowSlash bool) (map[string]string, bool) {
	params := map[string]string{}
	var rec func(ti, si int) bool
	rec = func(ti, si int) bool {
		if ti == len(tmpl) {
			return si == len(segs)
		}
		if si == len(segs) {
			return false
		}
		t := tmpl[ti]
		if t.re != nil {
			m := t.re.FindStringSubmatch(segs[si])
			if m == nil {
				return false
			}
			for k, name := range t.names {
				params[name] = m[k+1]
			}
			if rec(ti+1, si+1) {
				return true
			}
			for _, name := range t.names {
				delete(params, name)
			}
			return false
		}
		if t.param == "" {
			return t.literal == segs[si] && rec(ti+1, si+1)
		}
		if segs[si] == "" {
			return false
		}
		maxSpan := 1
		if allowSlash && slashParams[t.param] {
			maxSpan = len(segs) - si - (len(tmpl) - ti - 1)
		}
		for span := 1; span <= maxSpan; span++ {
			params[t.param] = strings.Join(segs[si:si+span], "/")
			if rec(ti+1, si+span) {
				return true
			}
		}
		delete(params, t.param)
		return false
	}
	if !rec(0, 0) {
		return nil, false
	}
	return params, true
}
