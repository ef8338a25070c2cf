package ghsim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// appKey is generated once per test binary: RSA generation is slow.
var appKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type sim struct {
	*Server
	t   *testing.T
	url string
}

const testRepo = "acme/app"

func newSim(t *testing.T, opts Options) *sim {
	t.Helper()
	if opts.PrivateKey == nil {
		opts.PrivateKey = appKey()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	s.SetBaseURL(srv.URL)
	return &sim{Server: s, t: t, url: srv.URL}
}

// seed creates acme/app with a config file on main and pull request #1
// from branch feature.
func (s *sim) seed() (headSHA string) {
	s.t.Helper()
	must(s.t, s.CreateRepo("acme", "app", "main"))
	_, err := s.Commit(testRepo, "main", map[string]string{".github/deploybot.yml": "workers: [web]\n", "README.md": "hello\n"}, "config")
	must(s.t, err)
	headSHA, err = s.Commit(testRepo, "feature", map[string]string{"web/index.js": "export default {}\n"}, "feature")
	must(s.t, err)
	n, err := s.OpenPR(testRepo, "feature", "main", "Add feature", false, false)
	must(s.t, err)
	if n != 1 {
		s.t.Fatalf("first pull request is #%d", n)
	}
	return headSHA
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// signJWT makes an App JWT the way ghinstallation does.
func signJWT(t *testing.T, key *rsa.PrivateKey, appID int64, iat, exp time.Time) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "RS256", "typ": "JWT"})
	claims := enc(map[string]any{"iat": iat.Unix(), "exp": exp.Unix(), "iss": fmt.Sprint(appID)})
	digest := sha256.Sum256([]byte(head + "." + claims))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return head + "." + claims + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// token gets an installation token through the App JWT flow.
func (s *sim) token() string {
	s.t.Helper()
	now := s.opts.Now()
	jwt := signJWT(s.t, appKey(), s.AppID(), now.Add(-30*time.Second), now.Add(90*time.Second))
	resp, body := s.do("POST", fmt.Sprintf("/app/installations/%d/access_tokens", s.InstallationID()), "Bearer "+jwt, nil)
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("access token: %d %s", resp.StatusCode, body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	must(s.t, json.Unmarshal(body, &tok))
	return tok.Token
}

// do sends a raw request; auth is the whole Authorization header value.
func (s *sim) do(method, path, auth string, body any, headers ...string) (*http.Response, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	must(s.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	must(s.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	must(s.t, err)
	return resp, data
}

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return m
}
