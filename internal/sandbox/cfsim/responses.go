package cfsim

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

var responseRouter = sync.OnceValues(func() (routers.Router, error) {
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	return legacy.NewRouter(spec.Doc(), apispec.ValidationOptions()...)
})

// checkResponses wraps next so that each successful JSON answer of a route in
// the description is validated against the description's response schema;
// violations go to report. It keeps the simulator honest about what it
// answers, not only about what it accepts.
func checkResponses(next http.Handler, report func(method, path string, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if err := validateResponse(r, rec); err != nil {
			report(r.Method, r.URL.Path, err)
		}
	})
}

func validateResponse(req *http.Request, rec *httptest.ResponseRecorder) error {
	if rec.Code >= 300 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		return nil
	}
	router, err := responseRouter()
	if err != nil {
		return err
	}
	target := "https://api.cloudflare.com/client/v4" + req.URL.Path
	if req.URL.RawQuery != "" {
		target += "?" + req.URL.RawQuery
	}
	r2, err := http.NewRequestWithContext(req.Context(), req.Method, target, nil)
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(r2)
	if err != nil {
		return nil // a route missing from the description (secrets, assets)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r2, PathParams: params, Route: route},
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(bytes.Clone(rec.Body.Bytes()))
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		return fmt.Errorf("answer breaks the description's response schema: %w", err)
	}
	return nil
}
