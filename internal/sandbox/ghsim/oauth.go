package ghsim

import (
	"crypto/subtle"
	"encoding/json"
	htmltemplate "html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// The App's user-to-server OAuth web flow, as github.com serves it (see
// CONFORMANCE.md, "Login with GitHub"):
//
//	GET  /login/oauth/authorize     the page where a person authorizes the App
//	POST /login/oauth/access_token  a code for a user access token (ghu_…)
//
// A person "signs in" on the authorize page by typing a login: the sandbox
// has no passwords. The token then acts for that login on the two routes a
// web interface needs to know who someone is and what they may read:
// GET /user and GET /repos/{owner}/{repo}, whose "permissions" are the
// person's role (SetPermission). A private repository (SetPrivate) is a 404
// for anyone without a role on it, as on GitHub.

const (
	oauthPrefix = "/login/oauth/"
	// userTokenTTL and codeTTL are GitHub's: user access tokens of an App
	// with expiring tokens live 8 hours; a code must be used within 10
	// minutes.
	userTokenTTL = 8 * time.Hour
	codeTTL      = 10 * time.Minute
	// ClientID is the simulated App's OAuth client id (GET /app shows it).
	ClientID = "Iv1.0123456789abcdef"
)

// oauthState is what the web flow keeps.
type oauthState struct {
	secret    string
	callbacks []string
	codes     map[string]oauthCode
	users     map[string]userToken // access token → who
}

type oauthCode struct {
	client             string // the client id it was issued to
	login, redirectURI string
	expires            time.Time
}

type userToken struct {
	login   string
	expires time.Time
}

func newOAuthState() oauthState {
	return oauthState{secret: randomHex(20), codes: map[string]oauthCode{}, users: map[string]userToken{}}
}

// ClientSecret is the App's OAuth client secret, made up at New.
func (s *Server) ClientSecret() string { return s.oauth.secret }

// AddCallbackURL registers a callback URL of the App: an authorization
// request's redirect_uri must be one of them (GitHub Apps have up to 10).
func (s *Server) AddCallbackURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.oauth.callbacks, u) {
		s.oauth.callbacks = append(s.oauth.callbacks, u)
	}
}

// SetPrivate makes repo private (or public again): a person without a role
// on it no longer sees it.
func (s *Server) SetPrivate(repoName string, private bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return err
	}
	rp.private = private
	return nil
}

// serveOAuth serves the web flow's pages, which are not part of the REST
// API (github.com, not api.github.com).
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == oauthPrefix+"authorize" && r.Method == http.MethodGet:
		s.authorizePage(w, r)
	case r.URL.Path == oauthPrefix+"authorize" && r.Method == http.MethodPost:
		s.authorize(w, r)
	case r.URL.Path == oauthPrefix+"access_token" && r.Method == http.MethodPost:
		s.accessToken(w, r)
	default:
		http.NotFound(w, r)
	}
}

// client returns the secret and callback URLs of the App whose OAuth
// client id is id: the simulator's own App, or one registered from a
// manifest (its callback_urls). Callers hold s.mu.
func (s *Server) client(id string) (secret string, callbacks []string, found bool) {
	if id == ClientID {
		return s.oauth.secret, s.oauth.callbacks, true
	}
	for _, app := range s.apps {
		if app.clientID == id {
			return app.clientSecret, app.callbacks, true
		}
	}
	return "", nil, false
}

// redirectFor checks an authorization request's client and redirect URI and
// returns where the person goes back to. GitHub shows an error page for an
// unknown client, and redirects to the first callback with
// error=redirect_uri_mismatch for a redirect_uri it does not know; both are
// an error page here (the bot never sends either on purpose).
func (s *Server) redirectFor(clientID, redirectURI string) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, callbacks, found := s.client(clientID)
	switch {
	case !found:
		return "", "unknown client_id " + clientID
	case len(callbacks) == 0:
		return "", "the App has no callback URL (ghsim.AddCallbackURL, or the manifest's callback_urls)"
	case redirectURI == "":
		return callbacks[0], ""
	case !slices.Contains(callbacks, redirectURI):
		return "", "redirect_uri_mismatch: the redirect_uri MUST match the registered callback URL for this application"
	}
	return redirectURI, ""
}

var authorizeTmpl = htmltemplate.Must(htmltemplate.New("authorize").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize {{.App}} — sandbox GitHub</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto">
<h1>Authorize {{.App}}</h1>
<p>This is the sandbox's GitHub: there are no passwords. Sign in as any login; what it may see is the role
the sandbox gave it on each repository.</p>
<form method="post" action="authorize">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="state" value="{{.State}}">
<label>Login <input id="login" name="login" value="{{.Login}}" required pattern="[A-Za-z0-9-]+"></label>
<button id="authorize" type="submit">Authorize {{.App}}</button>
</form></body></html>
`))

func (s *Server) authorizePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, problem := s.redirectFor(q.Get("client_id"), q.Get("redirect_uri"))
	if problem != "" {
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = authorizeTmpl.Execute(w, map[string]string{
		"App": s.opts.AppSlug, "ClientID": ClientID, "RedirectURI": redirect,
		"State": q.Get("state"), "Login": q.Get("login"),
	})
}

// authorize is the authorize page's form: the person chose a login and
// authorized the App. It sends them back with a code and the state.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	redirect, problem := s.redirectFor(r.PostForm.Get("client_id"), r.PostForm.Get("redirect_uri"))
	login := r.PostForm.Get("login")
	if problem == "" && (login == "" || strings.ContainsAny(login, "/[]? ")) {
		problem = "a login is required"
	}
	if problem != "" {
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	code := randomHex(10)
	s.mu.Lock()
	s.oauth.codes[code] = oauthCode{client: r.PostForm.Get("client_id"), login: login, redirectURI: r.PostForm.Get("redirect_uri"), expires: s.now().Add(codeTTL)}
	s.mu.Unlock()
	u, err := url.Parse(redirect)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v := u.Query()
	v.Set("code", code)
	if st := r.PostForm.Get("state"); st != "" {
		v.Set("state", st)
	}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// accessToken is POST /login/oauth/access_token. Its errors are answered
// 200 with an "error" field, as GitHub does; JSON when the client accepts
// it, a form otherwise.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm() // parameters may come in the query or a form body
	answer := func(v map[string]any) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_ = json.NewEncoder(w).Encode(v)
			return
		}
		f := url.Values{}
		for k, x := range v {
			b, _ := json.Marshal(x)
			f.Set(k, strings.Trim(string(b), `"`))
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		_, _ = w.Write([]byte(f.Encode()))
	}
	const errDocs = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
	refuse := func(code, desc string) {
		answer(map[string]any{"error": code, "error_description": desc, "error_uri": errDocs + "#" + strings.ReplaceAll(code, "_", "-")})
	}
	s.mu.Lock()
	secret, _, known := s.client(r.Form.Get("client_id"))
	s.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(r.Form.Get("client_secret")), []byte(secret)) != 1 {
		refuse("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	}
	s.mu.Lock()
	code, found := s.oauth.codes[r.Form.Get("code")]
	delete(s.oauth.codes, r.Form.Get("code")) // a code is good once
	now := s.now()
	s.mu.Unlock()
	switch {
	case !found || !now.Before(code.expires) || code.client != r.Form.Get("client_id"):
		refuse("bad_verification_code", "The code passed is incorrect or expired.")
		return
	case r.Form.Get("redirect_uri") != "" && r.Form.Get("redirect_uri") != code.redirectURI:
		refuse("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
		return
	}
	tok := "ghu_" + randomHex(18)
	s.mu.Lock()
	s.oauth.users[tok] = userToken{login: code.login, expires: now.Add(userTokenTTL)}
	s.mu.Unlock()
	answer(map[string]any{
		"access_token": tok, "expires_in": int(userTokenTTL.Seconds()),
		"refresh_token": "ghr_" + randomHex(30), "refresh_token_expires_in": 15811200,
		"scope": "", "token_type": "bearer",
	})
}

// userRoutes are the REST routes a user access token may call here.
var userRoutes = map[string]bool{
	"GET /user":                 true,
	"GET /repos/{owner}/{repo}": true,
}

// userOf returns the login of a live user access token; ok is false when
// the credential is not a user token at all.
func (s *Server) userOf(r *http.Request) (login string, isUser bool, denied *reply) {
	cred := bearer(r)
	if !strings.HasPrefix(cred, "ghu_") {
		return "", false, nil
	}
	s.mu.Lock()
	tok, found := s.oauth.users[cred]
	now := s.now()
	s.mu.Unlock()
	if !found || !now.Before(tok.expires) {
		rep := fail(http.StatusUnauthorized, "Bad credentials", docsRoot)
		return "", true, &rep
	}
	if !userRoutes[apispec.Route(r.Context())] {
		rep := fail(http.StatusForbidden, "Resource not accessible by integration (ghsim serves user access tokens only "+
			"GET /user and GET /repos/{owner}/{repo})", docsRoot)
		return "", true, &rep
	}
	return tok.login, true, nil
}

type userKey struct{}

// requestUser is the login a user access token acts for ("" for an
// installation token).
func requestUser(r *http.Request) string {
	login, _ := r.Context().Value(userKey{}).(string)
	return login
}

// getUser is GET /user.
func (s *Server) getUser(r *http.Request) reply {
	login := requestUser(r)
	if login == "" {
		return fail(http.StatusForbidden, "Resource not accessible by integration", "https://docs.github.com/rest/users/users#get-the-authenticated-user")
	}
	u := s.userObject(login)
	u["name"] = login
	for _, k := range []string{"company", "blog", "location", "email", "hireable", "bio", "twitter_username"} {
		u[k] = nil
	}
	u["blog"] = ""
	created := timestamp(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	u["created_at"], u["updated_at"] = created, created
	u["public_repos"], u["public_gists"], u["followers"], u["following"] = 0, 0, 0, 0
	return ok(u)
}

// getRepo is GET /repos/{owner}/{repo}. For a user access token it says
// what the person may do, and hides a private repository from whoever has
// no role on it.
func (s *Server) getRepo(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	m := s.repoObject(template("pull-request.json")["base"].(map[string]any)["repo"].(map[string]any), rp.fullName(), rp, false)
	login := requestUser(r)
	if login == "" {
		return ok(m)
	}
	if rp.uninstalled || s.installation != InstallationActive {
		// A user token reaches only what the App may reach too.
		return notFound()
	}
	role := rp.perms[login]
	if role == "" && strings.EqualFold(login, rp.owner) {
		role = "admin"
	}
	if role == "" {
		if rp.private {
			return notFound()
		}
		role = "read"
	}
	m["permissions"] = rolePermissions(role)
	return ok(m)
}
