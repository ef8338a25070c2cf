package cloudflare

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// APIError is an error answer of the Cloudflare API.
type APIError struct {
	Op       string // what the bot was doing, e.g. "upload worker"
	Resource string // which resource, e.g. "codex-web-preview-7"
	Status   int
	Errors   []ErrorDetail
}

// ErrorDetail is one entry of the "errors" array of Cloudflare's envelope.
type ErrorDetail struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudflare: %s %q: %d %s", e.Op, e.Resource, e.Status, http.StatusText(e.Status))
	for i, d := range e.Errors {
		if i == 0 {
			b.WriteString(":")
		} else {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " [%d] %s", d.Code, d.Message)
	}
	for _, d := range e.Errors {
		if h, ok := hints[d.Code]; ok {
			b.WriteString(" (" + h + ")")
			break
		}
	}
	return b.String()
}

// hints say what to do about the refusals a user can act on: limits of
// the account's plan (developers.cloudflare.com/workers/platform/limits/,
// codes from developers.cloudflare.com/workers/observability/errors/).
var hints = map[int]string{
	10027: "the Worker is larger than the plan allows after compression (3 MB on Workers Free, 10 MB on Paid): bundle less, or move to a plan that allows more",
	10037: "the account has as many Workers as its plan allows (100 on Workers Free, 500 on Paid): close stale previews, delete unused Workers, or move to a plan that allows more, and set cloudflare.workers_limit to match",
	10054: "an environment variable or secret is larger than Cloudflare allows (5 KB)",
	10055: "the Worker has more environment variables and secrets than the plan allows (64 on Workers Free, 128 on Paid)",
}

// Transient reports whether the answer said "not now" (rate limited,
// overloaded) rather than "no": the caller may try again later.
func (e *APIError) Transient() bool { return retry.TransientStatus(e.Status) }

// HasCode reports whether the API answered with the given Cloudflare error code.
func (e *APIError) HasCode(code int) bool {
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err is an API answer saying the resource does not exist.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func (e *APIError) scrub(secrets []string) {
	for i := range e.Errors {
		for _, s := range secrets {
			if s != "" {
				e.Errors[i].Message = strings.ReplaceAll(e.Errors[i].Message, s, "[REDACTED]")
			}
		}
	}
}

// responseDumper is implemented by the SDK's error type (internal/apierror.Error,
// re-exported only by the SDK's root package, which would link every service).
type responseDumper interface {
	DumpResponse(body bool) []byte
}

// asAPIError extracts status and error details from an SDK error without
// keeping the SDK error (and the request it references) around.
func asAPIError(err error) (*APIError, bool) {
	var d responseDumper
	if !errors.As(err, &d) {
		return nil, false
	}
	res, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(d.DumpResponse(true))), nil)
	if rerr != nil {
		return nil, false
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	ae := &APIError{Status: res.StatusCode}
	var env struct {
		Errors []ErrorDetail `json:"errors"`
	}
	if json.Unmarshal(body, &env) == nil {
		ae.Errors = env.Errors
	}
	if len(ae.Errors) == 0 && len(body) > 0 && !json.Valid(body) {
		ae.Errors = []ErrorDetail{{Message: truncate(strings.TrimSpace(string(body)), 200)}}
	}
	return ae, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
