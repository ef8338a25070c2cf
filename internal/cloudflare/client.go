// Package cloudflare deploys Workers and attaches hostnames to them through the
// Cloudflare v4 API, using the official SDK (cloudflare-go/v6).
//
// Every operation is idempotent: repeating it after a lost response converges on
// the same state (get-or-create by name, delete-if-exists). Transient failures
// (429, 423, 408, 5xx, dropped connections) are retried by the SDK's own retry
// loop with jittered exponential backoff, honouring Retry-After, and never past
// the context's deadline.
package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go/v6/dns"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/workers"
)

// DefaultBaseURL is the production Cloudflare v4 API.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4/"

// Options configures a Client. AccountID and APIToken are required.
type Options struct {
	AccountID string
	// APIToken is a Cloudflare API token (Authorization: Bearer). It is never
	// included in errors.
	APIToken string
	// BaseURL overrides the API endpoint (the sandbox simulator, tests).
	BaseURL string
	// HTTPClient defaults to a client without a global timeout; each attempt is
	// bounded by RequestTimeout and the whole call by the context.
	HTTPClient *http.Client

	// MaxRetries is the number of retries after the first attempt (default 6).
	MaxRetries int
	// RetryBaseDelay and RetryMaxDelay shape the backoff used when the API gives
	// no Retry-After: attempt n waits a random duration in
	// [d/2, d] with d = min(RetryMaxDelay, RetryBaseDelay·2ⁿ).
	// Defaults: 1s and 30s.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// RequestTimeout bounds one HTTP attempt (default 2 minutes: script and
	// asset uploads can be large).
	RequestTimeout time.Duration
}

// Client talks to one Cloudflare account.
type Client struct {
	accountID string

	scripts     *workers.ScriptService
	domains     *workers.DomainService
	routes      *workers.RouteService
	assetUpload *workers.AssetUploadService
	records     *dns.RecordService

	baseDelay, maxDelay time.Duration
	now                 func() time.Time
}

// New returns a Client. It does not contact the API.
func New(opts Options) (*Client, error) {
	if opts.AccountID == "" {
		return nil, errors.New("cloudflare: account id is required")
	}
	if opts.APIToken == "" {
		return nil, errors.New("cloudflare: API token is required")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 6
	}
	if opts.RetryBaseDelay <= 0 {
		opts.RetryBaseDelay = time.Second
	}
	if opts.RetryMaxDelay <= 0 {
		opts.RetryMaxDelay = 30 * time.Second
	}
	if opts.RetryMaxDelay < opts.RetryBaseDelay {
		opts.RetryMaxDelay = opts.RetryBaseDelay
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 2 * time.Minute
	}
	c := &Client{
		accountID: opts.AccountID,
		baseDelay: opts.RetryBaseDelay,
		maxDelay:  opts.RetryMaxDelay,
		now:       time.Now,
	}
	// The services are built directly instead of through cloudflare.NewClient:
	// that constructor also reads CLOUDFLARE_* environment variables (an API key
	// in the environment would silently be sent along) and links every service
	// of the SDK into the binary.
	ro := []option.RequestOption{
		option.WithBaseURL(opts.BaseURL),
		option.WithAPIToken(opts.APIToken),
		option.WithHTTPClient(opts.HTTPClient),
		option.WithMaxRetries(opts.MaxRetries),
		option.WithRequestTimeout(opts.RequestTimeout),
		option.WithMiddleware(c.retryPolicy),
	}
	c.scripts = workers.NewScriptService(ro...)
	c.domains = workers.NewDomainService(ro...)
	c.routes = workers.NewRouteService(ro...)
	c.assetUpload = workers.NewAssetUploadService(ro...)
	c.records = dns.NewRecordService(ro...)
	return c, nil
}

// AccountID is the account the client works on.
func (c *Client) AccountID() string { return c.accountID }

// retryPolicy adjusts the SDK's retry decision, which is made after the
// middleware chain returns (requestconfig.shouldRetry reads X-Should-Retry
// before looking at the status, and retryDelay prefers Retry-After-Ms):
//   - 423 Locked is retried (the SDK only knows 408/409/429/5xx);
//   - 409 Conflict is not: Cloudflare uses it for lasting conflicts
//     (duplicate route, hostname taken), which retrying cannot fix;
//   - without a Retry-After from the server, our jittered backoff replaces the
//     SDK's fixed 2s·2ⁿ schedule;
//   - a wait that would end after the context's deadline is not attempted, so
//     the caller gets the API's error instead of a bare "deadline exceeded".
func (c *Client) retryPolicy(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if err != nil || res == nil || res.StatusCode < 400 {
		return res, err
	}
	if !retryableStatus(res.StatusCode) {
		res.Header.Set("X-Should-Retry", "false")
		return res, nil
	}
	wait, ok := serverRetryAfter(res, c.now())
	if !ok {
		attempt, _ := strconv.Atoi(req.Header.Get("X-Stainless-Retry-Count"))
		wait = c.backoff(attempt)
		res.Header.Set("Retry-After-Ms", strconv.FormatInt(wait.Milliseconds(), 10))
	}
	if deadline, ok := req.Context().Deadline(); ok && c.now().Add(wait).After(deadline) {
		res.Header.Set("X-Should-Retry", "false")
		return res, nil
	}
	res.Header.Set("X-Should-Retry", "true")
	return res, nil
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusLocked, http.StatusRequestTimeout:
		return true
	}
	return code >= 500
}

// serverRetryAfter reads the wait the server asked for, in the same headers
// and order as the SDK.
func serverRetryAfter(res *http.Response, now time.Time) (time.Duration, bool) {
	if v := res.Header.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	if v := res.Header.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil {
			return time.Duration(s * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, t.Sub(now)), true
		}
	}
	return 0, false
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.baseDelay
	for i := 0; i < attempt && d < c.maxDelay; i++ {
		d *= 2
	}
	d = min(d, c.maxDelay)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// wrap turns an SDK error into an *APIError (or a plain wrapped error for
// transport failures), naming the operation and the resource. SDK errors carry
// the *http.Request, whose headers hold the API token and whose body may hold
// secrets; they are never returned to callers.
func (c *Client) wrap(err error, op, resource string, scrub ...string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cloudflare: %s %q: %w", op, resource, err)
	}
	if ae, ok := asAPIError(err); ok {
		ae.Op, ae.Resource = op, resource
		ae.scrub(scrub)
		return ae
	}
	msg := err.Error()
	for _, s := range scrub {
		if s != "" && strings.Contains(msg, s) {
			// Losing the chain is the price of not leaking the value.
			return fmt.Errorf("cloudflare: %s %q: %s", op, resource, strings.ReplaceAll(msg, s, "[REDACTED]"))
		}
	}
	return fmt.Errorf("cloudflare: %s %q: %w", op, resource, err)
}
