package ghsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// authorizeAs walks the authorize page as a browser would and returns the
// code GitHub sent back to the callback.
func (s *sim) authorizeAs(login, redirect, state string) string {
	s.t.Helper()
	page, err := http.Get(s.url + "/login/oauth/authorize?" + url.Values{"client_id": {ClientID}, "redirect_uri": {redirect}, "state": {state}}.Encode())
	must(s.t, err)
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="authorize"`) {
		s.t.Fatalf("authorize page: %d %s", page.StatusCode, body)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(s.url+"/login/oauth/authorize", url.Values{"client_id": {ClientID}, "redirect_uri": {redirect}, "state": {state}, "login": {login}})
	must(s.t, err)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		s.t.Fatalf("authorize: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect || loc.Query().Get("state") != state {
		s.t.Fatalf("sent back to %s, want %s with state %q", loc, redirect, state)
	}
	return loc.Query().Get("code")
}

func (s *sim) exchange(form url.Values) map[string]any {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(s.t, err)
	defer resp.Body.Close()
	var out map[string]any
	must(s.t, json.NewDecoder(resp.Body).Decode(&out))
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("access_token answered %d (GitHub answers 200, errors included)", resp.StatusCode)
	}
	return out
}

func TestUserLoginFlow(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	s := newSim(t, Options{Now: clock.Now})
	s.seed()
	must(t, s.CreateRepo("acme", "secret", "main"))
	must(t, s.SetPrivate("acme/secret", true))
	must(t, s.SetPermission(testRepo, "writer", "write"))
	const callback = "https://bot.example/login/callback"
	s.AddCallbackURL(callback)

	code := s.authorizeAs("writer", callback, "st8")
	good := url.Values{"client_id": {ClientID}, "client_secret": {s.ClientSecret()}, "code": {code}, "redirect_uri": {callback}}

	t.Run("a wrong secret is refused", func(t *testing.T) {
		bad := url.Values{"client_id": {ClientID}, "client_secret": {"nope"}, "code": {code}}
		if got := s.exchange(bad)["error"]; got != "incorrect_client_credentials" {
			t.Fatalf("error = %v", got)
		}
	})
	tok := s.exchange(good)
	access, _ := tok["access_token"].(string)
	if !strings.HasPrefix(access, "ghu_") || tok["token_type"] != "bearer" || tok["expires_in"] != float64(28800) {
		t.Fatalf("token answer %v", tok)
	}
	t.Run("a code is good once", func(t *testing.T) {
		if got := s.exchange(good)["error"]; got != "bad_verification_code" {
			t.Fatalf("error = %v", got)
		}
	})
	t.Run("the redirect_uri must be the authorize request's", func(t *testing.T) {
		c := s.authorizeAs("writer", callback, "x")
		f := url.Values{"client_id": {ClientID}, "client_secret": {s.ClientSecret()}, "code": {c}, "redirect_uri": {"https://evil.example/cb"}}
		if got := s.exchange(f)["error"]; got != "redirect_uri_mismatch" {
			t.Fatalf("error = %v", got)
		}
	})
	t.Run("an unregistered callback gets no page", func(t *testing.T) {
		resp, err := http.Get(s.url + "/login/oauth/authorize?" + url.Values{"client_id": {ClientID}, "redirect_uri": {"https://evil.example/cb"}}.Encode())
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	user := func(path, token string) (int, map[string]any) {
		resp, body := s.do("GET", path, "Bearer "+token, nil)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		return resp.StatusCode, m
	}
	if st, u := user("/user", access); st != 200 || u["login"] != "writer" {
		t.Fatalf("GET /user: %d %v", st, u)
	}
	if st, r := user("/repos/acme/app", access); st != 200 || r["permissions"].(map[string]any)["push"] != true {
		t.Fatalf("writer's repository: %d %v", st, r["permissions"])
	}
	if st, _ := user("/repos/acme/secret", access); st != http.StatusNotFound {
		t.Fatalf("a private repository without a role: %d, want 404", st)
	}
	if st, _ := user("/repos/acme/app/pulls/1", access); st != http.StatusForbidden {
		t.Fatalf("a route user tokens do not reach here: %d, want 403", st)
	}
	clock.Advance(8*time.Hour + time.Second)
	if st, _ := user("/user", access); st != http.StatusUnauthorized {
		t.Fatalf("an expired user token: %d, want 401", st)
	}
}
