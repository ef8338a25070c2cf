// Package login signs people in to the web interface with GitHub and tells
// what each of them may see and do.
//
// Sign-in is the GitHub App's own OAuth client (GitHub's "web application
// flow" for a user access token): /login sends the person to GitHub's
// authorize page with a random state, which a short-lived cookie also
// holds; GitHub sends them back to /login/callback with a code, which the
// bot exchanges (with the client secret) for a user access token. The
// session then lives in PostgreSQL (sessions.go): the cookie carries only a
// random id, HTTP-only, SameSite=Lax, Secure when the bot is served over
// https, and expiring with the token (8 hours).
//
// What a person may see is GitHub's answer, never the bot's guess: Role
// asks GET /repos/{owner}/{repo} with the person's token, whose
// "permissions" are what both the person and the App may do there (a
// private repository the person cannot read is a 404). Answers are cached
// briefly (Options.AccessTTL), so a page view costs no request to GitHub
// while a revoked permission still takes effect within a minute.
package login

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// Paths the service serves.
const (
	PathLogin    = "/login"
	PathCallback = "/login/callback"
	PathLogout   = "/logout"
)

const (
	sessionCookie = "deploybot_session"
	stateCookie   = "deploybot_login"
	// CSRFField is the form field (or X-CSRF-Token header) that carries a
	// session's CSRF token on every state-changing request.
	CSRFField = "csrf"
)

// Options configure New.
type Options struct {
	// WebURL is where people sign in: https://github.com or a GitHub
	// Enterprise Server's root. APIURL is the REST API's root.
	WebURL, APIURL string
	// ClientID and ClientSecret are the App's OAuth client.
	ClientID, ClientSecret string
	// PublicURL is where people reach the bot; GitHub sends them back to
	// PublicURL + PathCallback, which must be one of the App's callback URLs.
	PublicURL string
	// MasterKey seals the stored tokens and signs CSRF tokens.
	MasterKey []byte
	// Admins are the logins that see every repository and the operator's
	// pages.
	Admins []string
	// HTTPClient talks to GitHub (default: 15 s timeout).
	HTTPClient *http.Client
	// SessionTTL bounds a session (default 8 hours: a user token's life).
	SessionTTL time.Duration
	// AccessTTL is how long GitHub's answer about a person's role on a
	// repository is reused (default 1 minute).
	AccessTTL time.Duration
	Now       func() time.Time
	Logger    zerolog.Logger
}

// Service is sign-in and access for the web interface.
type Service struct {
	opts     Options
	sessions sessions
	secure   bool
	csrfKey  []byte

	mu    sync.Mutex
	roles map[roleKey]roleEntry
}

// New checks opts and returns the service; its sessions live in pool.
func New(pool *pgxpool.Pool, opts Options) (*Service, error) {
	switch {
	case opts.ClientID == "" || opts.ClientSecret == "":
		return nil, errors.New("login: sign-in needs the App's client id and client secret")
	case opts.PublicURL == "":
		return nil, errors.New("login: sign-in needs server.public_url")
	case len(opts.MasterKey) == 0:
		return nil, errors.New("login: sign-in needs master_key (it seals the stored GitHub tokens)")
	}
	pub, err := url.Parse(opts.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("login: server.public_url %q is not a URL", opts.PublicURL)
	}
	opts.PublicURL = strings.TrimSuffix(opts.PublicURL, "/")
	opts.WebURL = strings.TrimSuffix(opts.WebURL, "/")
	if !strings.HasSuffix(opts.APIURL, "/") {
		opts.APIURL += "/"
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 8 * time.Hour
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{
		opts:     opts,
		sessions: sessions{pool: pool, seal: derive(opts.MasterKey, "web session token")},
		secure:   pub.Scheme == "https",
		csrfKey:  derive(opts.MasterKey, "web csrf"),
		roles:    map[roleKey]roleEntry{},
	}, nil
}

// derive is a key for one purpose, from the master key.
func derive(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("deploybot " + purpose))
	return m.Sum(nil)
}

// Register adds the sign-in routes to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathLogin, s.login)
	mux.HandleFunc("GET "+PathCallback, s.callback)
	mux.HandleFunc("POST "+PathLogout, s.logout)
}

// User is a signed-in person.
type User struct {
	ID    int64
	Login string
	// Admin: one of Options.Admins.
	Admin bool
	// CSRF is the token the session's forms carry (CSRFField).
	CSRF string

	token     string
	sessionID []byte
}

// User returns the person signed in on r, or nil.
func (s *Service) User(r *http.Request) (*User, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil
	}
	id, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(id) != sessionIDBytes {
		return nil, nil
	}
	u, err := s.sessions.get(r.Context(), id, s.opts.Now())
	if err != nil || u == nil {
		return nil, err
	}
	u.Admin = slices.ContainsFunc(s.opts.Admins, func(a string) bool { return strings.EqualFold(a, u.Login) })
	u.CSRF = s.csrfToken(id)
	return u, nil
}

// Require returns the person signed in on r; when nobody is, it answers
// with a redirect to sign-in (coming back to this page) and returns nil.
func (s *Service) Require(w http.ResponseWriter, r *http.Request) *User {
	u, err := s.User(r)
	if err != nil {
		s.opts.Logger.Error().Err(err).Msg("web: reading the session")
		http.Error(w, "the bot could not read its sessions; try again", http.StatusServiceUnavailable)
		return nil
	}
	if u == nil {
		next := r.URL.RequestURI()
		if r.Method != http.MethodGet {
			next = "/"
		}
		http.Redirect(w, r, PathLogin+"?next="+url.QueryEscape(next), http.StatusSeeOther)
	}
	return u
}

func (s *Service) csrfToken(sessionID []byte) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write(sessionID)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF verifies a state-changing request of u: it must carry u's CSRF
// token and, when the browser says where it comes from, come from the
// bot's own origin.
func (s *Service) CheckCSRF(r *http.Request, u *User) error {
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" && !sameOrigin(origin, s.opts.PublicURL) {
		return fmt.Errorf("the request comes from %s, not from %s", origin, s.opts.PublicURL)
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	if u == nil || subtle.ConstantTimeCompare([]byte(got), []byte(u.CSRF)) != 1 {
		return errors.New("the form's CSRF token is missing or not this session's: reload the page and try again")
	}
	return nil
}

func sameOrigin(origin, public string) bool {
	o, err1 := url.Parse(origin)
	p, err2 := url.Parse(public)
	return err1 == nil && err2 == nil && o.Scheme == p.Scheme && strings.EqualFold(o.Host, p.Host)
}

// login sends the person to GitHub's authorize page. The state, and where
// to come back to, are in a cookie that only the callback reads.
func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	state := randomToken(24)
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = "/"
	}
	http.SetCookie(w, &http.Cookie{
		Name: stateCookie, Value: state + "|" + next, Path: PathCallback,
		MaxAge: int((10 * time.Minute).Seconds()), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	q := url.Values{
		"client_id":    {s.opts.ClientID},
		"redirect_uri": {s.opts.PublicURL + PathCallback},
		"state":        {state},
	}
	if l := r.URL.Query().Get("login"); l != "" {
		q.Set("login", l)
	}
	http.Redirect(w, r, s.opts.WebURL+"/login/oauth/authorize?"+q.Encode(), http.StatusFound)
}

// localPath accepts only a path on this site (no "//host", no scheme).
func localPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "/\\") && !strings.ContainsAny(p, "\r\n")
}

// callback is where GitHub sends the person back: check the state, trade
// the code for a token, learn who it is, open a session.
func (s *Service) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		http.Error(w, "GitHub did not sign you in: "+e+" — "+q.Get("error_description"), http.StatusForbidden)
		return
	}
	c, err := r.Cookie(stateCookie)
	state, next, _ := strings.Cut(valueOf(c, err), "|")
	if state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(q.Get("state"))) != 1 {
		http.Error(w, "this sign-in did not start here, or took over 10 minutes: sign in again from "+s.opts.PublicURL+PathLogin, http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Path: PathCallback, MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	token, err := s.exchange(r.Context(), q.Get("code"))
	if err != nil {
		s.opts.Logger.Warn().Err(err).Msg("web: sign-in failed")
		http.Error(w, "sign-in failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	who, err := s.whoAmI(r.Context(), token)
	if err != nil {
		s.opts.Logger.Warn().Err(err).Msg("web: sign-in failed")
		http.Error(w, "sign-in failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	id, err := s.sessions.create(r.Context(), who, token, s.opts.Now().Add(s.opts.SessionTTL))
	if err != nil {
		s.opts.Logger.Error().Err(err).Msg("web: storing a session")
		http.Error(w, "the bot could not store your session; try again", http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(id), Path: "/",
		MaxAge: int(s.opts.SessionTTL.Seconds()), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	s.opts.Logger.Info().Str("login", who.Login).Msg("web: signed in")
	if !localPath(next) {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func valueOf(c *http.Cookie, err error) string {
	if err != nil {
		return ""
	}
	return c.Value
}

// logout ends the session (a form POST with the CSRF token).
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	u, err := s.User(r)
	if err == nil && u != nil {
		if err := s.CheckCSRF(r, u); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if err := s.sessions.delete(r.Context(), u.sessionID); err != nil {
			http.Error(w, "the bot could not end your session; try again", http.StatusServiceUnavailable)
			return
		}
		s.forget(u.ID)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// exchange trades an authorization code for a user access token. GitHub
// answers a refused exchange 200 with an "error" field.
func (s *Service) exchange(ctx context.Context, code string) (string, error) {
	if code == "" {
		return "", errors.New("GitHub sent no code")
	}
	form := url.Values{
		"client_id":     {s.opts.ClientID},
		"client_secret": {s.opts.ClientSecret},
		"code":          {code},
		"redirect_uri":  {s.opts.PublicURL + PathCallback},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.WebURL+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := s.do(req, &out); err != nil {
		return "", fmt.Errorf("exchange the code at %s: %w", req.URL.Redacted(), err)
	}
	if out.Error != "" {
		return "", fmt.Errorf("GitHub refused the code: %s (%s)", out.Error, out.Description)
	}
	if out.AccessToken == "" {
		return "", errors.New("GitHub's answer has no access token")
	}
	return out.AccessToken, nil
}

// identity is who a token acts for.
type identity struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
}

func (s *Service) whoAmI(ctx context.Context, token string) (identity, error) {
	var who identity
	req, err := s.apiRequest(ctx, "user", token)
	if err != nil {
		return who, err
	}
	if err := s.do(req, &who); err != nil {
		return who, fmt.Errorf("ask GitHub who signed in: %w", err)
	}
	if who.Login == "" {
		return who, errors.New("GitHub's GET /user has no login")
	}
	return who, nil
}

func (s *Service) apiRequest(ctx context.Context, path, token string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.opts.APIURL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	return req, nil
}

// statusError is a GitHub answer other than 200.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return fmt.Sprintf("GitHub answered %d: %s", e.status, e.msg) }

func (s *Service) do(req *http.Request, out any) error {
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &e)
		return &statusError{status: resp.StatusCode, msg: e.Message}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GitHub's answer is not JSON: %w", err)
	}
	return nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
