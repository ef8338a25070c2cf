// Package neon is a small client for the parts of the Neon API v2 that
// deploybot needs: database branches for previews and test runs, their
// compute endpoints and connection strings.
//
// Every call is retried with jittered backoff where Neon says it is safe
// (429, 423 while another operation holds the branch, 503; other 5xx and
// dropped connections only for idempotent methods), bounded by the caller's
// context. Calls that start operations wait for them to finish, so a
// returned branch is ready to connect to. Creating is get-or-create by name
// (EnsureBranch), so a retried job never makes a second branch.
package neon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// Client talks to one Neon API base URL with one API key. It is safe for
// concurrent use.
type Client struct {
	baseURL string
	apiKey  string
	http    *http.Client
	retry   retry.Policy
	// poll bounds the waits between operation status checks.
	pollMin, pollMax time.Duration
	// lockWait is how long a call answered 423 Locked keeps being retried
	// after the retry policy's attempts are spent (see send).
	lockWait time.Duration
}

// DefaultLockWait is how long the client waits out Neon's 423 Locked
// ("project already has running conflicting operations"): as long as the
// project's running operations may take. Neon does not promise a bound;
// creating a branch of a large database or starting a cold compute can take
// minutes, and the preview's whole sync is bounded by its own deadline.
const DefaultLockWait = 5 * time.Minute

// New returns a client for baseURL (e.g. https://console.neon.tech/api/v2).
// A nil httpClient means http.DefaultClient.
func New(baseURL, apiKey string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{
		baseURL:  strings.TrimSuffix(baseURL, "/"),
		apiKey:   apiKey,
		http:     httpClient,
		retry:    retry.Policy{Attempts: 8, Base: 250 * time.Millisecond, Max: 10 * time.Second},
		pollMin:  50 * time.Millisecond,
		pollMax:  2 * time.Second,
		lockWait: DefaultLockWait,
	}
}

// WithLockWait returns a copy of c that waits out 423 Locked for up to d
// of waiting (beyond its retry policy's attempts).
func (c *Client) WithLockWait(d time.Duration) *Client {
	cp := *c
	cp.lockWait = d
	return &cp
}

// WithRetry returns a copy of c that retries with p instead of the default
// policy (8 attempts, 250ms base, 10s cap).
func (c *Client) WithRetry(p retry.Policy) *Client {
	cp := *c
	cp.retry = p
	return &cp
}

// WithPolling returns a copy of c that checks running operations every min
// at first, backing off to max.
func (c *Client) WithPolling(min, max time.Duration) *Client {
	cp := *c
	cp.pollMin, cp.pollMax = min, max
	return &cp
}

// APIError is an answer from Neon other than success, with Neon's error
// body ({"code": "...", "message": "..."}).
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" [request " + e.RequestID + "]")
	}
	return b.String()
}

// Transient reports whether the answer said "not now" (locked, rate limited,
// overloaded) rather than "no": the caller may try again later.
func (e *APIError) Transient() bool { return retry.TransientStatus(e.Status) }

// StatusOf returns the HTTP status of a Neon error answer, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// IsNotFound reports whether err is Neon's 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// do sends one API call, retrying per the client's policy, and decodes a
// successful JSON answer into out (when non-nil). It returns the final
// status with a nil error for 2xx answers.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	return c.send(ctx, c.retry, method, path, query, body, out)
}

// send is do with another retry policy.
func (c *Client) send(ctx context.Context, policy retry.Policy, method, path string, query url.Values, body, out any) (int, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	newRequest := func(ctx context.Context) (*http.Request, error) {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
		req.Header.Set("Accept", "application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, nil
	}
	// 423 Locked means "wait for the project's running operations", which
	// can take longer than the policy's attempts last (about half a minute):
	// the call goes on being retried, at the policy's longest wait, until
	// lockWait has been spent waiting.
	sleep := policy.Sleep
	if sleep == nil {
		sleep = retry.Sleep
	}
	var resp *http.Response
	var waited time.Duration
	for round := 1; ; round++ {
		r, err := policy.Do(ctx, c.http, newRequest)
		if err != nil {
			return 0, err
		}
		if r.StatusCode != http.StatusLocked || waited >= c.lockWait {
			resp = r
			break
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		r.Body.Close()
		wait := min(policy.Delay(policy.Attempts+round, nil), c.lockWait-waited)
		waited += wait
		if err := sleep(ctx, wait); err != nil {
			return 0, fmt.Errorf("%s %s: waiting for the project's running operations (423 Locked): %w", method, path, err)
		}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Status: resp.StatusCode}
		var eb struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(data, &eb) == nil && (eb.Message != "" || eb.Code != "") {
			ae.Code, ae.Message, ae.RequestID = eb.Code, eb.Message, eb.RequestID
		} else {
			ae.Message = excerpt(data)
		}
		return resp.StatusCode, ae
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func projectPath(projectID string, parts ...string) string {
	var b strings.Builder
	b.WriteString("/projects/")
	b.WriteString(url.PathEscape(projectID))
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}
