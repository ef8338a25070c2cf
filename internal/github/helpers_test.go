package github

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// appKey is generated once per test binary: RSA generation is slow.
var appKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

const (
	owner = "acme"
	name  = "app"
	repo  = owner + "/" + name
)

// fakeClock serves both the simulator and the rate limiter: sleeping
// advances it at once, so tests wait for nothing.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

type env struct {
	t       *testing.T
	sim     *ghsim.Server
	url     string
	clock   *fakeClock
	cfg     Config
	client  *gh.Client
	rep     *Reporter
	headSHA string

	mu    sync.Mutex
	paths []string // every request's escaped path, as the simulator got it
}

// requestPaths returns the escaped paths of the requests so far.
func (e *env) requestPaths() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.paths...)
}

// newEnv starts a simulator with acme/app and pull request #1 (branch
// feature), and a Reporter on it through the bot's ClientCreator.
func newEnv(t *testing.T, opts ghsim.Options) *env {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	opts.PrivateKey = appKey()
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	sim, err := ghsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sim: sim, clock: clock}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.paths = append(e.paths, r.URL.EscapedPath())
		e.mu.Unlock()
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)

	must(t, sim.CreateRepo(owner, name, "main"))
	_, err = sim.Commit(repo, "main", map[string]string{".github/deploybot.yml": "workers: [web]\n"}, "config")
	must(t, err)
	head, err := sim.Commit(repo, "feature", map[string]string{"web/index.js": "export default {}\n"}, "feature")
	must(t, err)
	_, err = sim.OpenPR(repo, "feature", "main", "Add feature", false, false)
	must(t, err)

	e.url, e.headSHA = srv.URL, head
	e.cfg = Config{
		V3APIURL:   srv.URL + "/",
		AppID:      sim.AppID(),
		PrivateKey: sim.AppPrivateKeyPEM(),
		RateLimits: RateLimits{Now: clock.Now, Sleep: clock.Sleep},
	}
	e.client = e.installationClient(e.cfg)
	e.rep = NewReporter(e.client, owner, name, WithBotLogin(sim.BotLogin()))
	return e
}

func (e *env) installationClient(cfg Config) *gh.Client {
	e.t.Helper()
	cc, err := NewClientCreator(cfg)
	must(e.t, err)
	client, err := cc.NewInstallationClient(e.sim.InstallationID())
	must(e.t, err)
	return client
}

func (e *env) state() ghsim.State { return e.sim.Snapshot() }

// requests counts the requests that reached the simulator for route.
func (e *env) requests(route string) int { return e.state().Requests[route] }

// rsaPEM is a key GitHub does not know.
func rsaPEM() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const (
	routeListComments  = "GET /repos/{owner}/{repo}/issues/{issue_number}/comments"
	routeCreateComment = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
	routeEditComment   = "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}"
	routeDeleteComment = "DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}"
	routeGetComment    = "GET /repos/{owner}/{repo}/issues/comments/{comment_id}"
	routeGetPull       = "GET /repos/{owner}/{repo}/pulls/{pull_number}"
	routeUpdateCheck   = "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}"
)
