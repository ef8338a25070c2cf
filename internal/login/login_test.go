package login_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// world is a simulated GitHub with a public acme/app (writer may push), a
// private acme/secret (only writer may read), and the bot's sign-in in
// front of a page that says who is signed in and their role on ?repo=.
type world struct {
	t       *testing.T
	gh      *ghsim.Server
	ghURL   string
	botURL  string
	svc     *login.Service
	ghClock *clock
	clock   *clock
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ghClock: &clock{t: time.Now()}, clock: &clock{t: time.Now()}}
	gh, err := ghsim.New(ghsim.Options{Now: w.ghClock.now})
	if err != nil {
		t.Fatal(err)
	}
	ghSrv := httptest.NewServer(gh.Handler())
	t.Cleanup(ghSrv.Close)
	gh.SetBaseURL(ghSrv.URL)
	for _, r := range []string{"app", "secret"} {
		if err := gh.CreateRepo("acme", r, "main"); err != nil {
			t.Fatal(err)
		}
	}
	must(t, gh.SetPrivate("acme/secret", true))
	must(t, gh.SetPermission("acme/app", "writer", "write"))
	must(t, gh.SetPermission("acme/secret", "writer", "read"))

	mux := http.NewServeMux()
	botSrv := httptest.NewServer(mux)
	t.Cleanup(botSrv.Close)
	gh.AddCallbackURL(botSrv.URL + login.PathCallback)
	svc, err := login.New(pgtest.NewDatabase(t), login.Options{
		WebURL: ghSrv.URL, APIURL: ghSrv.URL + "/",
		ClientID: ghsim.ClientID, ClientSecret: gh.ClientSecret(),
		PublicURL: botSrv.URL, MasterKey: []byte("0123456789abcdef0123456789abcdef"),
		Admins: []string{"Boss"}, SessionTTL: 24 * time.Hour, Now: w.clock.now, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(mux)
	mux.HandleFunc("GET /whoami", func(rw http.ResponseWriter, r *http.Request) {
		u := svc.Require(rw, r)
		if u == nil {
			return
		}
		role, err := svc.Role(r.Context(), u, r.URL.Query().Get("repo"))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(rw, "login=%s admin=%v role=%s csrf=%s", u.Login, u.Admin, role, u.CSRF)
	})
	w.gh, w.ghURL, w.botURL, w.svc = gh, ghSrv.URL, botSrv.URL, svc
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// browser is a cookie-keeping client.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	must(t, err)
	return &http.Client{Jar: jar}
}

// signIn opens page, which sends the browser to sign in; it authorizes as
// login on the simulated GitHub's page and returns the page's body once
// back.
func (w *world) signIn(b *http.Client, page, as string) string {
	w.t.Helper()
	resp, err := b.Get(w.botURL + page)
	must(w.t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `id="authorize"`) {
		w.t.Fatalf("%s did not lead to GitHub's authorize page: %d %s", page, resp.StatusCode, body)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`name="(\w+)" value="([^"]*)"`).FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	form.Set("login", as)
	resp, err = b.PostForm(w.ghURL+"/login/oauth/authorize", form)
	must(w.t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("back from GitHub: %d %s", resp.StatusCode, out)
	}
	return string(out)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(s)
}

func get(t *testing.T, b *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := b.Get(u)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestSignInShowsWhatGitHubAllows(t *testing.T) {
	w := newWorld(t)
	writer := browser(t)
	page := w.signIn(writer, "/whoami?repo=acme/app", "writer")
	if !strings.HasPrefix(page, "login=writer admin=false role=write") {
		t.Fatalf("after sign-in the page says %q", page)
	}
	if _, p := get(t, writer, w.botURL+"/whoami?repo=acme/secret"); !strings.Contains(p, "role=read") {
		t.Fatalf("writer on the private repository: %q", p)
	}

	outsider := browser(t)
	if p := w.signIn(outsider, "/whoami?repo=acme/secret", "outsider"); !strings.Contains(p, "role=none") {
		t.Fatalf("an outsider on a private repository: %q", p)
	}
	if _, p := get(t, outsider, w.botURL+"/whoami?repo=acme/app"); !strings.Contains(p, "role=read") {
		t.Fatalf("an outsider on a public repository: %q", p)
	}
	boss := browser(t)
	if p := w.signIn(boss, "/whoami?repo=acme/app", "boss"); !strings.Contains(p, "admin=true") {
		t.Fatalf("an admin (listed as Boss): %q", p)
	}
}

func TestRolesAreCachedBriefly(t *testing.T) {
	w := newWorld(t)
	b := browser(t)
	w.signIn(b, "/whoami?repo=acme/app", "writer")
	must(t, w.gh.SetPermission("acme/app", "writer", "read"))
	if _, p := get(t, b, w.botURL+"/whoami?repo=acme/app"); !strings.Contains(p, "role=write") {
		t.Fatalf("within a minute the cached answer stands: %q", p)
	}
	w.clock.advance(61 * time.Second)
	if _, p := get(t, b, w.botURL+"/whoami?repo=acme/app"); !strings.Contains(p, "role=read") {
		t.Fatalf("a minute later GitHub's new answer: %q", p)
	}
}

func TestARevokedTokenEndsTheSession(t *testing.T) {
	w := newWorld(t)
	b := browser(t)
	w.signIn(b, "/whoami?repo=acme/app", "writer")
	w.ghClock.advance(9 * time.Hour) // GitHub's token expired; the session (24 h here) did not
	w.clock.advance(2 * time.Minute)
	if st, p := get(t, b, w.botURL+"/whoami?repo=acme/app"); st != http.StatusUnauthorized || !strings.Contains(p, "sign in again") {
		t.Fatalf("with a token GitHub refuses: %d %q", st, p)
	}
	if _, p := get(t, b, w.botURL+"/whoami?repo=acme/app"); !strings.Contains(p, `id="authorize"`) {
		t.Fatalf("the session should be gone, and the page ask to sign in: %q", p)
	}
}

func TestSignInRefusesForgedReturns(t *testing.T) {
	w := newWorld(t)
	// A callback whose state this browser never got (a link someone sent).
	b := browser(t)
	st, body := get(t, b, w.botURL+login.PathCallback+"?code=abc&state=forged")
	if st != http.StatusBadRequest || !strings.Contains(body, "did not start here") {
		t.Fatalf("forged callback: %d %q", st, body)
	}
	// next must stay on this site.
	noFollow := browser(t)
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(w.botURL + login.PathLogin + "?next=//evil.example/x")
	must(t, err)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "deploybot_login" && strings.Contains(c.Value, "evil") {
			t.Fatalf("the login cookie keeps an outside next: %q", c.Value)
		}
		if c.Name == "deploybot_login" && (!c.HttpOnly || c.SameSite != http.SameSiteLaxMode) {
			t.Fatalf("login cookie attributes: %+v", c)
		}
	}
}

func TestLogoutNeedsTheCSRFToken(t *testing.T) {
	w := newWorld(t)
	b := browser(t)
	page := w.signIn(b, "/whoami?repo=acme/app", "writer")
	csrf := regexp.MustCompile(`csrf=(\S+)`).FindStringSubmatch(page)[1]
	resp, err := b.PostForm(w.botURL+login.PathLogout, url.Values{"csrf": {"wrong"}})
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout with a wrong token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", w.botURL+login.PathLogout, strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = b.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout posted from another site: %d", resp.StatusCode)
	}
	resp, err = b.PostForm(w.botURL+login.PathLogout, url.Values{"csrf": {csrf}})
	must(t, err)
	resp.Body.Close()
	if _, p := get(t, b, w.botURL+"/whoami?repo=acme/app"); !strings.Contains(p, `id="authorize"`) {
		t.Fatalf("after logout the page should ask to sign in: %q", p)
	}
}

func TestNewRefusesAnIncompleteClient(t *testing.T) {
	for _, o := range []login.Options{
		{ClientSecret: "s", PublicURL: "https://bot", MasterKey: []byte("k")},
		{ClientID: "c", ClientSecret: "s", MasterKey: []byte("k")},
		{ClientID: "c", ClientSecret: "s", PublicURL: "https://bot"},
	} {
		if _, err := login.New(nil, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
