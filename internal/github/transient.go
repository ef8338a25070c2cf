package github

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/palantir/go-githubapp/githubapp"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// TransientRetryMiddleware retries requests that failed in passing: 5xx
// answers and dropped connections for requests whose repetition is harmless
// (see repeatable), 503 and refused connections for all (GitHub did not act
// on those), with jittered backoff bounded by the request's context. A POST
// that may have been acted on and would create a second thing is not
// repeated: the creating callers look up what they created instead (the
// status comment's marker, the PR's runs). 403/429 rate limits are
// RateLimitMiddleware's.
func TransientRetryMiddleware(p retry.Policy) githubapp.ClientMiddleware {
	if p.Attempts == 0 {
		p.Attempts = 4
	}
	base := p.Retryable
	p.Retryable = func(req *http.Request, resp *http.Response, err error) bool {
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusForbidden) {
			return false
		}
		if base != nil {
			return base(req, resp, err)
		}
		return retry.RetryableAs(repeatable(req), resp, err)
	}
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			var body []byte
			if req.Body != nil && req.GetBody == nil {
				b, err := io.ReadAll(req.Body)
				req.Body.Close()
				if err != nil {
					return nil, err
				}
				body = b
			}
			for attempt := 1; ; attempt++ {
				try := req.Clone(req.Context())
				switch {
				case body != nil:
					try.Body = io.NopCloser(bytes.NewReader(body))
				case req.GetBody != nil:
					b, err := req.GetBody()
					if err != nil {
						return nil, err
					}
					try.Body = b
				}
				resp, err := next.RoundTrip(try)
				if attempt >= p.Attempts || !p.Retryable(try, resp, err) {
					return resp, err
				}
				wait := p.Delay(attempt, resp)
				if resp != nil {
					_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
					resp.Body.Close()
				}
				if p.OnRetry != nil {
					p.OnRetry(attempt, wait, resp, err)
				}
				sleep := p.Sleep
				if sleep == nil {
					sleep = retry.Sleep
				}
				if serr := sleep(req.Context(), wait); serr != nil {
					if err == nil {
						err = serr
					}
					return nil, err
				}
			}
		})
	}
}

// repeatable reports whether sending req twice to GitHub has the effect of
// sending it once: GET, PUT and DELETE; PATCH, which the bot only uses to set
// fields to values (a check run, the status comment); a deployment status,
// of which only the newest counts; and a reaction, which GitHub answers 200
// when it already exists.
func repeatable(req *http.Request) bool {
	switch req.Method {
	case http.MethodPatch:
		return true
	case http.MethodPost:
		p := req.URL.Path
		return strings.HasSuffix(p, "/reactions") ||
			strings.Contains(p, "/deployments/") && strings.HasSuffix(p, "/statuses")
	}
	return retry.Idempotent(req.Method)
}
