package github

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v66/github"
)

// TestPermanent: which of GitHub's answers end a job at once, and which
// leave it to River's retries. Errors are wrapped as they reach a job:
// go-github's, inside the Reporter's, inside the pipeline's.
func TestPermanent(t *testing.T) {
	answer := func(status int, body string, header ...string) *http.Response {
		h := http.Header{}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: h, Body: io.NopCloser(strings.NewReader(body))}
	}
	// tokenRefused is how ghinstallation fails every request of an
	// installation whose token GitHub will not create, as go-github returns it.
	tokenRefused := func(resp *http.Response) error {
		he := &ghinstallation.HTTPError{Message: "received non 2xx response status", InstallationID: 7, Response: resp}
		inner := fmt.Errorf("could not refresh installation id 7's token: %w", he)
		return fmt.Errorf("open acme/app: %w", &url.Error{Op: "Get", URL: "https://api.github.com/repos/acme/app/pulls/1", Err: inner})
	}
	// api is an answer of the REST API to method path, as the Reporter
	// wraps it.
	api := func(method, path string, resp *http.Response) error {
		req, _ := http.NewRequest(method, "https://ghe.example.com"+path, nil)
		resp.Request = req
		body, _ := io.ReadAll(resp.Body)
		er := &gh.ErrorResponse{Response: resp, Message: string(body)}
		return fmt.Errorf("read: github: get pull request in acme/app: %w", notFoundError{er})
	}
	for _, c := range []struct {
		name      string
		err       error
		permanent bool
		reason    string
	}{
		{"installation deleted", tokenRefused(answer(404, `{"message":"Not Found"}`)), true, "installation 7 of the App (404 Not Found: Not Found): the App was uninstalled"},
		{"installation suspended", tokenRefused(answer(403, `{"message":"This installation has been suspended"}`)), true, "This installation has been suspended): the installation is suspended"},
		{"App key revoked", tokenRefused(answer(401, `{"message":"A JSON web token could not be decoded"}`)), true, "no longer accepts the App's private key"},
		{"token: secondary limit with Retry-After", tokenRefused(answer(403, `{"message":"x"}`, "Retry-After", "60")), false, ""},
		{"token: secondary limit by its message", tokenRefused(answer(403, `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`)), false, ""},
		{"token: primary limit", tokenRefused(answer(403, `{"message":"API rate limit exceeded"}`, "X-RateLimit-Remaining", "0")), false, ""},
		{"token: 429", tokenRefused(answer(429, `{"message":"Too many"}`)), false, ""},
		{"token: 502", tokenRefused(answer(502, `bad gateway`)), false, ""},
		{"token: connection refused", fmt.Errorf("x: %w", &ghinstallation.HTTPError{Message: "could not get access_tokens", RootCause: errors.New("connection refused")}), false, ""},
		{"repository 404", api("GET", "/api/v3/repos/acme/app", answer(404, "Not Found")), true, "404 for GET repos/acme/app: the App is not installed on repository acme/app any more, or it was deleted"},
		{"pull request 404", api("GET", "/repos/acme/app/pulls/12", answer(404, "Not Found")), true, "repository acme/app"},
		{"pipeline file 404", api("GET", "/repos/acme/app/contents/.github/deploybot.yml", answer(404, "Not Found")), false, ""},
		{"check run 404", api("PATCH", "/repos/acme/app/check-runs/5", answer(404, "Not Found")), false, ""},
		{"API 401 (a token used before it reached every replica)", api("GET", "/repos/acme/app/pulls/12", answer(401, "Bad credentials")), false, ""},
		{"API 403 secondary limit", api("POST", "/repos/acme/app/check-runs", answer(403, "You have exceeded a secondary rate limit", "Retry-After", "30")), false, ""},
		{"API 403 no permission", api("POST", "/repos/acme/app/check-runs", answer(403, "Resource not accessible by integration")), false, ""},
		{"API 500", api("GET", "/repos/acme/app/pulls/12", answer(500, "oops")), false, ""},
		{"abuse rate limit", &gh.AbuseRateLimitError{Message: "secondary rate limit"}, false, ""},
		{"not GitHub's", errors.New("neon: 423 Locked"), false, ""},
		{"nil", nil, false, ""},
	} {
		reason, ok := Permanent(c.err)
		if ok != c.permanent || !strings.Contains(reason, c.reason) {
			t.Errorf("%s: Permanent = %q, %v; want %v with %q", c.name, reason, ok, c.permanent, c.reason)
		}
	}
}
