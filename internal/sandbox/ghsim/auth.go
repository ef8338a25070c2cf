package ghsim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

const (
	routeAccessTokens = "POST /app/installations/{installation_id}/access_tokens"
	// routeApp is the App itself, read with the App's JWT: the bot learns
	// its own slug, and so its bot user's login, from it.
	routeApp = "GET /app"
)

// tokenTTL is how long an installation token lives on GitHub.
const tokenTTL = time.Hour

type token struct {
	installation int64
	expires      time.Time
}

// window is a primary rate-limit window of one installation.
type window struct {
	reset time.Time
	used  int
}

// verifyJWT checks an App JWT as GitHub does: RS256 signed by the App's
// key, issued by the App ID, not expired, at most 10 minutes long. It
// returns the App's id: the sandbox's own App or one registered through the
// manifest flow. Callers hold s.mu.
func (s *Server) verifyJWT(tok string) (int64, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0, fmt.Errorf("A JSON web token could not be decoded")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return 0, fmt.Errorf("A JSON web token could not be decoded")
	}
	if header.Alg != "RS256" {
		return 0, fmt.Errorf("'alg' must be RS256, got %q", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return 0, fmt.Errorf("A JSON web token could not be decoded")
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat int64           `json:"iat"`
		Exp int64           `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return 0, fmt.Errorf("A JSON web token could not be decoded")
	}
	// The issuer names the App, and so the key its signature must match.
	iss := strings.Trim(string(claims.Iss), `"`)
	key, appID, found := s.appKeyFor(iss)
	if !found {
		return 0, fmt.Errorf("Integration not found (iss %q)", iss)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return 0, fmt.Errorf("'Issuer' claim ('iss') must be an Integer, or the JWT signature does not match the App's public key")
	}
	now := s.now().Unix()
	switch {
	case claims.Exp == 0 || claims.Iat == 0:
		return 0, fmt.Errorf("Missing 'issued at' or 'expiration time' claim ('iat', 'exp')")
	case claims.Exp <= now:
		return 0, fmt.Errorf("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires")
	case claims.Iat > now+60:
		return 0, fmt.Errorf("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued")
	case claims.Exp-claims.Iat > 600:
		return 0, fmt.Errorf("'Expiration time' claim ('exp') is too far in the future")
	}
	return appID, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// bearer returns the credential of "Bearer X" or "token X".
func bearer(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	for _, p := range []string{"Bearer ", "bearer ", "token ", "Token "} {
		if v, ok := strings.CutPrefix(auth, p); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// createAccessToken is POST /app/installations/{installation_id}/access_tokens.
func (s *Server) createAccessToken(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
	jwt := bearer(r)
	if jwt == "" {
		return fail(http.StatusUnauthorized, "A JSON web token could not be decoded", doc)
	}
	appID, err := s.verifyJWT(jwt)
	if err != nil {
		return fail(http.StatusUnauthorized, err.Error(), doc)
	}
	// The one installation is the sandbox's own App's; an App registered
	// through the manifest flow is installed nowhere.
	id, err := strconv.ParseInt(apispec.PathParam(r.Context(), "installation_id"), 10, 64)
	if err != nil || id != s.opts.InstallationID || appID != s.opts.AppID {
		return fail(http.StatusNotFound, "Not Found", doc)
	}
	if refused := s.installationRefusal(doc); refused != nil {
		return *refused
	}
	buf := make([]byte, 18)
	_, _ = rand.Read(buf)
	value := "ghs_" + hex.EncodeToString(buf)
	expires := s.now().Add(tokenTTL)
	s.tokens[value] = token{installation: id, expires: expires}
	s.tokensMade++
	return created(map[string]any{
		"token":                value,
		"expires_at":           timestamp(expires),
		"permissions":          appPermissions(),
		"repository_selection": "all",
	})
}

// getApp answers GET /app for the App's JWT.
func (s *Server) getApp(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/apps/apps#get-the-authenticated-app"
	jwt := bearer(r)
	if jwt == "" {
		return fail(http.StatusUnauthorized, "A JSON web token could not be decoded", doc)
	}
	appID, err := s.verifyJWT(jwt)
	if err != nil {
		return fail(http.StatusUnauthorized, err.Error(), doc)
	}
	if app, registered := s.apps[appID]; registered {
		return ok(s.registeredAppObject(app))
	}
	created := timestamp(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return ok(map[string]any{
		"id":           s.opts.AppID,
		"slug":         s.opts.AppSlug,
		"client_id":    ClientID,
		"node_id":      "A_kwDOAAAB",
		"owner":        s.userObject("revelations-studio"),
		"name":         s.opts.AppSlug,
		"description":  "deploybot's simulated App",
		"external_url": "https://example.com",
		"html_url":     "https://github.com/apps/" + s.opts.AppSlug,
		"created_at":   created,
		"updated_at":   created,
		"permissions":  appPermissions(),
		"events":       []string{"check_run", "check_suite", "issue_comment", "pull_request", "push"},
	})
}

func appPermissions() map[string]any {
	return map[string]any{
		"checks":        "write",
		"contents":      "read",
		"deployments":   "write",
		"issues":        "write",
		"metadata":      "read",
		"pull_requests": "write",
	}
}

// authenticate accepts a live installation token and returns its
// installation; anything else is GitHub's 401.
func (s *Server) authenticate(r *http.Request) (int64, *reply) {
	cred := bearer(r)
	s.mu.Lock()
	tok, ok := s.tokens[cred]
	now := s.now()
	s.mu.Unlock()
	switch {
	case cred == "":
		rep := fail(http.StatusUnauthorized, "Requires authentication", docsRoot)
		return 0, &rep
	case !ok || !now.Before(tok.expires):
		rep := fail(http.StatusUnauthorized, "Bad credentials", docsRoot)
		return 0, &rep
	}
	return tok.installation, nil
}

// allowRate applies the primary rate limit of installation inst and adds
// GitHub's X-RateLimit-* headers to the answer. A 304 does not count, as on
// GitHub.
func (s *Server) allowRate(rec *recorder, r *http.Request, inst int64) bool {
	s.mu.Lock()
	now := s.now()
	win := s.windows[inst]
	if win == nil || !now.Before(win.reset) {
		win = &window{reset: now.Add(s.opts.RateLimitWindow)}
		s.windows[inst] = win
	}
	exhausted := win.used >= s.opts.RateLimit
	s.mu.Unlock()
	setHeaders := func(used int) {
		h := rec.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(s.opts.RateLimit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(max(s.opts.RateLimit-used, 0)))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(win.reset.Unix(), 10))
		h.Set("X-RateLimit-Used", strconv.Itoa(used))
		h.Set("X-RateLimit-Resource", "core")
	}
	if exhausted {
		setHeaders(s.opts.RateLimit)
		s.write(rec, r, fail(http.StatusForbidden, fmt.Sprintf("API rate limit exceeded for installation ID %d.", inst),
			"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"))
		return false
	}
	rec.onHeader = func(status int) {
		s.mu.Lock()
		if status != http.StatusNotModified {
			win.used++
		}
		used := win.used
		s.mu.Unlock()
		setHeaders(used)
	}
	return true
}
