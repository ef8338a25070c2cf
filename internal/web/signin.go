package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/revelations-studio/deploybot/internal/login"
)

// Sign-in (Options.Login): every page but the sign-in flow's own and the
// assets asks who the viewer is first, and sends whoever is not signed in
// to GitHub. A repository's runs are then shown to a viewer GitHub lets
// read the repository (login.Service.Role), and to the configured admins;
// to anyone else they do not exist (404), so a private repository's name
// is not confirmed either.

type viewerKey struct{}

// Viewer is the person signed in on the request's page, or nil when the
// pages have no sign-in (the demo without a client, a bot behind its own
// authenticating proxy).
func Viewer(ctx context.Context) *login.User {
	u, _ := ctx.Value(viewerKey{}).(*login.User)
	return u
}

// public are the paths served without sign-in.
func public(path string) bool {
	return strings.HasPrefix(path, "/assets/") || path == login.PathLogin || path == login.PathCallback || path == login.PathLogout
}

// signIn returns r with its viewer, or answers (a redirect to sign-in, or
// an error) and returns nil.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) *http.Request {
	if h.opts.Login == nil || public(r.URL.Path) {
		return r
	}
	u := h.opts.Login.Require(w, r)
	if u == nil {
		return nil
	}
	return r.WithContext(context.WithValue(r.Context(), viewerKey{}, u))
}

// signedIn is the Access of pages with sign-in: admins read everything,
// others what GitHub lets them read.
type signedIn struct{ svc *login.Service }

func (a signedIn) CanRead(ctx context.Context, _ *http.Request, repo string) (bool, error) {
	u := Viewer(ctx)
	if u == nil {
		return false, nil
	}
	if u.Admin {
		return true, nil
	}
	role, err := a.svc.Role(ctx, u, repo)
	if errors.Is(err, login.ErrSignedOut) {
		return false, nil // the session is gone: the next page asks to sign in again
	}
	return role >= login.RoleRead, err
}
