// Package github is the bot's access to GitHub: installation clients built
// with go-githubapp (ETag caching, request logging, rate-limit waiting) and
// a Reporter that reads pull requests, permissions and files of one
// repository and writes what the bot shows there: check runs, the status
// comment, reactions and deployments.
//
// go-github is imported as gh; this package keeps the name github because
// callers use it as "the GitHub side of the bot".
package github

import (
	"container/list"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	gh "github.com/google/go-github/v66/github"
	"github.com/gregjones/httpcache"
	"github.com/palantir/go-githubapp/githubapp"
	"github.com/shurcooL/githubv4"

	"github.com/revelations-studio/deploybot/internal/retry"
	"github.com/rs/zerolog"
)

// DefaultV3URL is GitHub.com's REST API.
const DefaultV3URL = "https://api.github.com/"

// Config says which GitHub the clients talk to and as which App.
type Config struct {
	// V3APIURL is the REST base URL: DefaultV3URL, a GitHub Enterprise
	// Server's https://HOST/api/v3/, or the sandbox. Empty: DefaultV3URL.
	V3APIURL string
	// V4APIURL is the GraphQL URL. Empty: derived from V3APIURL (see
	// DefaultV4URL).
	V4APIURL string
	// AppID is the App's ID ("App ID" on its settings page).
	AppID int64
	// PrivateKey is the App's PEM private key (PKCS#1 or PKCS#8).
	PrivateKey []byte
	// UserAgent names the bot in requests; empty: "deploybot".
	UserAgent string
	// Transport is the base transport (proxies, TLS settings, tests); nil:
	// http.DefaultTransport.
	Transport http.RoundTripper
	// CacheBytes bounds each installation client's ETag cache (default 16 MiB).
	CacheBytes int
	// RateLimits tunes rate-limit waiting.
	RateLimits RateLimits
	// Retry tunes the retries of transient failures (TransientRetryMiddleware).
	Retry retry.Policy
}

// AppLogin asks GitHub who the App is (GET /app, with the App's own JWT)
// and returns its bot user's login, "<slug>[bot]": the author of the
// status comments, which the bot must tell from any other bot's. It also
// proves the App id and private key are right, before any delivery is
// accepted. Its errors are *AppError: they say which URL was asked and
// what (if anything) GitHub answered.
func AppLogin(ctx context.Context, creator githubapp.ClientCreator, appID int64) (string, error) {
	client, err := creator.NewAppClient()
	if err != nil {
		return "", fmt.Errorf("github: App %d: %w", appID, err)
	}
	u := client.BaseURL.JoinPath("app").String()
	app, resp, err := client.Apps.Get(ctx, "")
	if err != nil {
		ae := &AppError{AppID: appID, URL: u, Err: err}
		var er *gh.ErrorResponse
		switch {
		case errors.As(err, &er):
			ae.Status, ae.Message = er.Response.StatusCode, er.Message
		case resp != nil && resp.Response != nil:
			ae.Status = resp.StatusCode
		}
		return "", ae
	}
	if app.GetSlug() == "" {
		return "", &AppError{AppID: appID, URL: u, Status: resp.StatusCode, Err: errors.New("the answer has no slug")}
	}
	return app.GetSlug() + "[bot]", nil
}

// AppError is a failed GET /app: GitHub refused the App's credentials
// (Status 401, or 404 for an App id it does not know), answered something
// else, or was not reached at all (Status 0).
type AppError struct {
	AppID   int64
	URL     string
	Status  int    // 0 when GitHub did not answer
	Message string // GitHub's message, when it sent one
	Err     error
}

// Refused reports whether GitHub turned the App id and key down.
func (e *AppError) Refused() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusNotFound
}

func (e *AppError) Error() string {
	switch {
	case e.Refused():
		return fmt.Sprintf("github: App %d: GET %s answered %d %s: %q (is the id the App's, and the private key this App's?)", e.AppID, e.URL, e.Status, http.StatusText(e.Status), e.Message)
	case e.Status == 0:
		return fmt.Sprintf("github: GET %s: GitHub did not answer: %v", e.URL, e.Err)
	}
	return fmt.Sprintf("github: App %d: GET %s: %v", e.AppID, e.URL, e.Err)
}

func (e *AppError) Unwrap() error { return e.Err }

// DefaultV4URL derives the GraphQL URL from a REST base URL the way GitHub
// lays them out: api.github.com/graphql, and HOST/api/graphql on GitHub
// Enterprise Server (REST at HOST/api/v3/).
func DefaultV4URL(v3 string) string {
	if v3 == "" {
		v3 = DefaultV3URL
	}
	base := strings.TrimSuffix(v3, "/")
	if b, ok := strings.CutSuffix(base, "/api/v3"); ok {
		return b + "/api/graphql"
	}
	return base + "/graphql"
}

// WebURL is where people see the GitHub a REST base URL belongs to (pull
// requests, commits, check runs): HOST on GitHub Enterprise Server (REST at
// HOST/api/v3/), https://github.com otherwise — the sandbox's GitHub too
// links there, as its html_url fields do.
func WebURL(v3 string) string {
	base := strings.TrimSuffix(v3, "/")
	if b, ok := strings.CutSuffix(base, "/api/v3"); ok {
		return b
	}
	return "https://github.com"
}

// NewClientCreator returns go-githubapp's caching ClientCreator (installation
// clients are reused per installation) configured for the bot:
//
//   - every GET is cached and revalidated with its ETag: GitHub answers 304,
//     which costs no rate limit, and nothing stale is ever served (GitHub's
//     max-age=60 would otherwise hide a new head SHA for a minute);
//   - requests are logged at debug level with the context's zerolog logger;
//   - rate limits are waited out (RateLimitMiddleware), and transient
//     failures retried where that is safe (TransientRetryMiddleware), each
//     attempt logged;
//   - each installation's requests are held to its budget (budget.go):
//     paced when little of GitHub's hourly quota remains, and capped at
//     RateLimits.RequestsPerHour when set.
func NewClientCreator(cfg Config) (githubapp.ClientCreator, error) {
	if cfg.AppID <= 0 {
		return nil, errors.New("github: app ID is not set")
	}
	if err := checkPrivateKey(cfg.PrivateKey); err != nil {
		return nil, err
	}
	v3 := cfg.V3APIURL
	if v3 == "" {
		v3 = DefaultV3URL
	}
	if u, err := url.Parse(v3); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("github: REST API URL %q is not an absolute URL", v3)
	}
	v4 := cfg.V4APIURL
	if v4 == "" {
		v4 = DefaultV4URL(v3)
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "deploybot"
	}
	cacheBytes := cfg.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = 16 << 20
	}
	opts := []githubapp.ClientOption{
		githubapp.WithClientUserAgent(ua),
		githubapp.WithClientCaching(true, func() httpcache.Cache { return newLRUCache(cacheBytes) }),
	}
	if cfg.Transport != nil {
		opts = append(opts, githubapp.WithTransport(cfg.Transport))
	}
	creator := func(middleware ...githubapp.ClientMiddleware) githubapp.ClientCreator {
		return githubapp.NewClientCreator(v3, v4, cfg.AppID, cfg.PrivateKey,
			append(slices.Clone(opts), githubapp.WithClientMiddleware(middleware...))...)
	}
	// App and token clients are not an installation's: they keep a state of
	// their own per client, without the installation's hard cap.
	appLimits := cfg.RateLimits
	appLimits.RequestsPerHour = 0
	delegate := &installationClients{
		// First is outermost: the rate limiter retries through the logger,
		// so every attempt is logged.
		ClientCreator: creator(
			RateLimitMiddleware(appLimits),
			TransientRetryMiddleware(cfg.Retry),
			githubapp.ClientLogging(zerolog.DebugLevel),
			drainBodies,
			uncached,
		),
		budgets: newBudgets(cfg.RateLimits),
		forInstallation: func(b *budget) githubapp.ClientCreator {
			// The budget's gate sits inside the transient retries, so
			// that every attempt is paced and counted.
			return creator(
				b.waitForLimits,
				TransientRetryMiddleware(cfg.Retry),
				b.gate,
				githubapp.ClientLogging(zerolog.DebugLevel),
				drainBodies,
				uncached,
			)
		},
	}
	cc, err := githubapp.NewCachingClientCreator(delegate, githubapp.DefaultCachingClientCapacity)
	if err != nil {
		return nil, fmt.Errorf("github: client creator: %w", err)
	}
	return cc, nil
}

// installationClients makes each installation's clients with middleware
// bound to that installation's budget. go-githubapp builds the middleware
// once per client, and its caching creator keeps clients in an LRU of 64
// (v3 and v4 counted apart), so a budget kept per client would be split
// between an installation's v3 and v4 clients and forgotten — hard cap
// included — whenever a client is evicted. Budgets are kept here by
// installation ID instead, and outlive the clients.
type installationClients struct {
	githubapp.ClientCreator // app and token clients
	budgets                 *budgets
	forInstallation         func(*budget) githubapp.ClientCreator
}

func (c *installationClients) NewInstallationClient(installationID int64) (*gh.Client, error) {
	return c.forInstallation(c.budgets.get(installationID)).NewInstallationClient(installationID)
}

func (c *installationClients) NewInstallationV4Client(installationID int64) (*githubv4.Client, error) {
	return c.forInstallation(c.budgets.get(installationID)).NewInstallationV4Client(installationID)
}

// noStoreKey marks a context whose requests stay out of the ETag cache.
type noStoreKey struct{}

// withoutCache returns ctx for requests whose answers are not kept in the
// ETag cache: large listings that one sweep reads (1,000 open PRs are as
// large as an installation's whole cache) would push out the entries the
// pipelines revalidate for free, and gain nothing themselves.
func withoutCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, noStoreKey{}, true)
}

// uncached asks the cache (httpcache) not to store the answers of requests
// made with withoutCache.
func uncached(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if r.Context().Value(noStoreKey{}) != nil {
			r = r.Clone(r.Context())
			r.Header.Set("Cache-Control", "no-store")
		}
		return next.RoundTrip(r)
	})
}

// drainBodies reads what is left of a response body when it is closed.
// httpcache stores a response only once its body was read to EOF, and
// go-github's JSON decoder stops at the closing brace: without this, a
// chunked answer would never be cached (and its connection not reused).
func drainBodies(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if resp != nil && resp.Body != nil {
			resp.Body = &drainingBody{ReadCloser: resp.Body}
		}
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type drainingBody struct{ io.ReadCloser }

func (b *drainingBody) Close() error {
	// Bounded: a huge body the caller abandoned is not worth reading.
	_, _ = io.Copy(io.Discard, io.LimitReader(b.ReadCloser, 4<<20))
	return b.ReadCloser.Close()
}

// checkPrivateKey fails early, at start-up, on a key go-githubapp would only
// reject when the first installation client is made. The error never
// contains key material.
func checkPrivateKey(pemBytes []byte) error {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return errors.New("github: app private key is not PEM")
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); ok {
			return nil
		}
	}
	return fmt.Errorf("github: app private key (PEM type %q) is neither PKCS#1 nor PKCS#8 RSA", block.Type)
}

// lruCache is an httpcache.Cache bounded by total bytes: httpcache's own
// memory cache grows forever, and a long-running bot touches many URLs.
type lruCache struct {
	mu       sync.Mutex
	max      int
	size     int
	order    *list.List // front: most recently used
	elements map[string]*list.Element
}

type lruEntry struct {
	key   string
	value []byte
}

func newLRUCache(maxBytes int) *lruCache {
	return &lruCache{max: maxBytes, order: list.New(), elements: map[string]*list.Element{}}
}

func (c *lruCache) Get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.elements[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry).value, true
}

func (c *lruCache) Set(key string, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.elements[key]; ok {
		c.remove(e)
	}
	if len(value) > c.max {
		return
	}
	c.elements[key] = c.order.PushFront(&lruEntry{key: key, value: value})
	c.size += len(value)
	for c.size > c.max {
		c.remove(c.order.Back())
	}
}

func (c *lruCache) Delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.elements[key]; ok {
		c.remove(e)
	}
}

func (c *lruCache) remove(e *list.Element) {
	ent := c.order.Remove(e).(*lruEntry)
	delete(c.elements, ent.key)
	c.size -= len(ent.value)
}
