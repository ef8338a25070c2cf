package apispec

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Validator checks requests against a Spec and counts them per route.
type Validator struct {
	spec     *Spec
	basePath string // path of the description's first server URL, e.g. /api/v2

	mu     sync.Mutex
	counts map[string]int
}

// Unmatched is the Counts key of requests that matched no route.
const Unmatched = "unmatched"

// Validator returns a validator with fresh counters.
func (s *Spec) Validator() *Validator {
	v := &Validator{spec: s, counts: map[string]int{}}
	if len(s.doc.Servers) > 0 {
		if u, err := url.Parse(s.doc.Servers[0].URL); err == nil {
			v.basePath = strings.TrimSuffix(u.Path, "/")
		}
	}
	return v
}

// Counts returns the number of requests seen per route ("POST
// /projects/{project_id}/branches"), valid or not; requests matching no route
// are counted under Unmatched.
func (v *Validator) Counts() map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]int, len(v.counts))
	for k, n := range v.counts {
		out[k] = n
	}
	return out
}

func (v *Validator) count(key string) {
	v.mu.Lock()
	v.counts[key]++
	v.mu.Unlock()
}

type ctxKey struct{}

type match struct {
	route  string
	params map[string]string
}

// Route returns the route template matched by Middleware, e.g.
// "POST /projects/{project_id}/branches", or "" outside it.
func Route(ctx context.Context) string {
	m, _ := ctx.Value(ctxKey{}).(*match)
	if m == nil {
		return ""
	}
	return m.route
}

// PathParam returns the decoded value of a path parameter of the matched route.
func PathParam(ctx context.Context, name string) string {
	m, _ := ctx.Value(ctxKey{}).(*match)
	if m == nil {
		return ""
	}
	return m.params[name]
}

// Middleware validates each request before next sees it: route and method,
// credentials (any one of the forms the description accepts; OAuth scopes
// are not checked), path and query parameters, and a JSON or form body
// against its schema. multipart/form-data bodies are not checked: the
// simulator checks them itself.
//
// Unknown routes get writeError(404), missing credentials writeError(401),
// anything else that breaks the description writeError(400) with a message
// naming the parameter or body field and what was expected.
//
// The description's server base path (Neon's /api/v2, Cloudflare's
// /client/v4) is optional in request paths.
func (v *Validator) Middleware(next http.Handler, writeError func(w http.ResponseWriter, r *http.Request, status int, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		if v.basePath != "" {
			if rest, ok := strings.CutPrefix(path, v.basePath); ok && (rest == "" || rest[0] == '/') {
				path = rest
			}
		}
		rt, params, known := v.spec.find(r.Method, path)
		if rt == nil {
			v.count(Unmatched)
			if known {
				writeError(w, r, http.StatusNotFound, fmt.Sprintf("method %s is not allowed on %s by the %s API description", r.Method, r.URL.Path, v.spec.name))
			} else {
				writeError(w, r, http.StatusNotFound, fmt.Sprintf("no route %s %s in the %s API description", r.Method, r.URL.Path, v.spec.name))
			}
			return
		}
		v.count(rt.String())
		if msg := v.checkCredentials(r, rt); msg != "" {
			writeError(w, r, http.StatusUnauthorized, msg)
			return
		}
		if err := v.validate(r, rt, params); err != nil {
			writeError(w, r, http.StatusBadRequest, describe(err))
			return
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, &match{route: rt.String(), params: params})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Check validates one request without serving it; nil means valid. The
// request body is left readable.
func (v *Validator) Check(r *http.Request) error {
	path := r.URL.EscapedPath()
	if v.basePath != "" {
		if rest, ok := strings.CutPrefix(path, v.basePath); ok && (rest == "" || rest[0] == '/') {
			path = rest
		}
	}
	rt, params, _ := v.spec.find(r.Method, path)
	if rt == nil {
		return fmt.Errorf("no route %s %s in the %s API description", r.Method, r.URL.Path, v.spec.name)
	}
	if msg := v.checkCredentials(r, rt); msg != "" {
		return errors.New(msg)
	}
	if err := v.validate(r, rt, params); err != nil {
		return errors.New(describe(err))
	}
	return nil
}

func (v *Validator) validate(r *http.Request, rt *route, params map[string]string) error {
	opts := &openapi3filter.Options{
		// Keep the body as the client sent it: the simulator must see what a
		// real server would, not kin's defaults.
		SkipSettingDefaults: true,
		RegexCompiler:       CompileRegex,
		// Credentials were checked by checkCredentials.
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		opts.ExcludeRequestBody = true
	}
	input := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route: &routers.Route{
			Spec:      v.spec.doc,
			Path:      rt.template,
			PathItem:  rt.item,
			Method:    rt.method,
			Operation: rt.op,
		},
		Options: opts,
	}
	return openapi3filter.ValidateRequest(r.Context(), input)
}

// checkCredentials returns "" when the request carries at least one of the
// credential forms the operation (or the document) accepts.
func (v *Validator) checkCredentials(r *http.Request, rt *route) string {
	reqs := v.spec.doc.Security
	if rt.op.Security != nil {
		reqs = *rt.op.Security
	}
	if len(reqs) == 0 {
		return ""
	}
	schemes := v.spec.doc.Components.SecuritySchemes
	var forms []string
	for _, req := range reqs {
		if len(req) == 0 {
			return "" // an empty requirement makes credentials optional
		}
		// Any one scheme of any requirement is enough: the simulators check
		// that a credential is present, not combinations or scopes.
		names := make([]string, 0, len(req))
		for name := range req {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ref := schemes[name]
			if ref == nil || ref.Value == nil {
				continue
			}
			ok, form := present(r, ref.Value)
			if ok {
				return ""
			}
			forms = append(forms, form)
		}
	}
	return "missing credentials: send one of " + strings.Join(forms, ", ")
}

func present(r *http.Request, s *openapi3.SecurityScheme) (bool, string) {
	auth := r.Header.Get("Authorization")
	prefixed := func(p string) bool {
		return len(auth) > len(p) && strings.EqualFold(auth[:len(p)], p) && strings.TrimSpace(auth[len(p):]) != ""
	}
	switch s.Type {
	case "http":
		switch strings.ToLower(s.Scheme) {
		case "bearer":
			return prefixed("Bearer "), "Authorization: Bearer <token>"
		case "basic":
			return prefixed("Basic "), "Authorization: Basic <credentials>"
		default:
			return auth != "", "Authorization: " + s.Scheme
		}
	case "apiKey":
		switch s.In {
		case "header":
			return r.Header.Get(s.Name) != "", "header " + s.Name
		case "query":
			return r.URL.Query().Get(s.Name) != "", "query parameter " + s.Name
		case "cookie":
			c, err := r.Cookie(s.Name)
			return err == nil && c.Value != "", "cookie " + s.Name
		}
	case "oauth2", "openIdConnect":
		return prefixed("Bearer "), "Authorization: Bearer <token>"
	}
	return false, s.Type
}

// describe turns a kin-openapi validation error into one line naming what is
// wrong and where.
func describe(err error) string {
	if me, ok := err.(openapi3.MultiError); ok && len(me) > 0 {
		err = me[0]
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return err.Error()
	}
	var where string
	switch {
	case re.Parameter != nil:
		where = fmt.Sprintf("%s parameter %q", re.Parameter.In, re.Parameter.Name)
	case re.RequestBody != nil:
		where = "request body"
	}
	if se := firstSchemaError(re.Err); se != nil {
		se = deepest(se)
		field := strings.Join(se.JSONPointer(), ".")
		reason := se.Reason
		if se.SchemaField == "enum" && se.Schema != nil {
			vals := make([]string, 0, len(se.Schema.Enum))
			for _, e := range se.Schema.Enum {
				vals = append(vals, fmt.Sprint(e))
			}
			reason = "value is not one of the allowed values [" + strings.Join(vals, ", ") + "]"
		}
		if se.SchemaField == "required" && field != "" {
			return fmt.Sprintf("%s: required field %q is missing", where, field)
		}
		if field == "" {
			return strings.TrimSpace(fmt.Sprintf("%s: %s", where, reason))
		}
		return fmt.Sprintf("%s: field %q: %s", where, field, reason)
	}
	reason := re.Reason
	if re.Err != nil && re.Err.Error() != reason {
		if reason == "" {
			reason = re.Err.Error()
		} else {
			reason += ": " + re.Err.Error()
		}
	}
	if where == "" {
		return reason
	}
	return where + ": " + reason
}

// deepest follows a schema error through allOf/anyOf/oneOf wrappers to the
// error that names the offending field.
func deepest(se *openapi3.SchemaError) *openapi3.SchemaError {
	for range 32 {
		inner := firstSchemaError(se.Origin)
		if inner == nil || inner == se {
			return se
		}
		se = inner
	}
	return se
}

func firstSchemaError(err error) *openapi3.SchemaError {
	switch e := err.(type) {
	case nil:
		return nil
	case *openapi3.SchemaError:
		return e
	case openapi3.MultiError:
		for _, c := range e {
			if se := firstSchemaError(c); se != nil {
				return se
			}
		}
		return nil
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			if se := firstSchemaError(c); se != nil {
				return se
			}
		}
		return nil
	case interface{ Unwrap() error }:
		return firstSchemaError(e.Unwrap())
	}
	// Named slice types such as kin's allOf error list.
	var me openapi3.MultiError
	if errors.As(err, &me) {
		return firstSchemaError(me)
	}
	return nil
}

// CheckResponse validates an answer to req (status, headers and JSON body)
// against the response the description declares for req's route, so a
// simulator's answers can be checked against the official description too.
func (v *Validator) CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	path := req.URL.EscapedPath()
	if v.basePath != "" {
		if rest, ok := strings.CutPrefix(path, v.basePath); ok && (rest == "" || rest[0] == '/') {
			path = rest
		}
	}
	rt, params, _ := v.spec.find(req.Method, path)
	if rt == nil {
		return fmt.Errorf("no route %s %s in the %s API description", req.Method, req.URL.Path, v.spec.name)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route: &routers.Route{
				Spec: v.spec.doc, Path: rt.template, PathItem: rt.item, Method: rt.method, Operation: rt.op,
			},
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			RegexCompiler:         CompileRegex,
			MultiError:            true,
		},
	}
	input.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(req.Context(), input)
}
