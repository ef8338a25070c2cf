package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Role is what a person may do in a repository, as GitHub says it.
type Role int

// Roles, weakest first, so that a comparison reads "at least".
const (
	RoleNone Role = iota // GitHub hides the repository from the person
	RoleRead
	RoleTriage
	RoleWrite
	RoleMaintain
	RoleAdmin
)

var roleNames = [...]string{"none", "read", "triage", "write", "maintain", "admin"}

func (r Role) String() string { return roleNames[r] }

// ErrSignedOut is Role's error when GitHub no longer accepts the person's
// token (revoked, or the App uninstalled for them): their session is ended.
var ErrSignedOut = errors.New("GitHub no longer accepts your sign-in: sign in again")

type roleKey struct {
	user int64
	repo string
}

type roleEntry struct {
	role    Role
	expires time.Time
}

// maxCachedRoles bounds the cache; past it, expired answers go first, then
// all of them.
const maxCachedRoles = 10000

// Role is what u may do in repo ("owner/name"): GitHub's answer to
// GET /repos/{owner}/{repo} with u's token, reused for Options.AccessTTL.
// A repository GitHub does not show the person is RoleNone.
func (s *Service) Role(ctx context.Context, u *User, repo string) (Role, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return RoleNone, fmt.Errorf("login: %q is not owner/name", repo)
	}
	key := roleKey{u.ID, strings.ToLower(repo)}
	now := s.opts.Now()
	s.mu.Lock()
	e, found := s.roles[key]
	s.mu.Unlock()
	if found && now.Before(e.expires) {
		return e.role, nil
	}
	role, err := s.askRole(ctx, u, owner, name)
	if errors.Is(err, ErrSignedOut) {
		_ = s.sessions.delete(context.WithoutCancel(ctx), u.sessionID)
		s.forget(u.ID)
		return RoleNone, err
	}
	if err != nil {
		return RoleNone, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.roles) >= maxCachedRoles {
		for k, v := range s.roles {
			if !now.Before(v.expires) {
				delete(s.roles, k)
			}
		}
		if len(s.roles) >= maxCachedRoles {
			clear(s.roles)
		}
	}
	s.roles[key] = roleEntry{role: role, expires: now.Add(s.opts.AccessTTL)}
	return role, nil
}

func (s *Service) askRole(ctx context.Context, u *User, owner, name string) (Role, error) {
	req, err := s.apiRequest(ctx, "repos/"+url.PathEscape(owner)+"/"+url.PathEscape(name), u.token)
	if err != nil {
		return RoleNone, err
	}
	var repo struct {
		Permissions map[string]bool `json:"permissions"`
	}
	err = s.do(req, &repo)
	var st *statusError
	switch {
	case errors.As(err, &st) && st.status == http.StatusUnauthorized:
		return RoleNone, ErrSignedOut
	case errors.As(err, &st) && (st.status == http.StatusNotFound || st.status == http.StatusForbidden):
		return RoleNone, nil
	case err != nil:
		return RoleNone, fmt.Errorf("ask GitHub what %s may do in %s/%s: %w", u.Login, owner, name, err)
	}
	p := repo.Permissions
	switch {
	case p["admin"]:
		return RoleAdmin, nil
	case p["maintain"]:
		return RoleMaintain, nil
	case p["push"]:
		return RoleWrite, nil
	case p["triage"]:
		return RoleTriage, nil
	case p["pull"]:
		return RoleRead, nil
	}
	return RoleNone, nil
}

// forget drops the cached roles of a person (signed out).
func (s *Service) forget(user int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.roles {
		if k.user == user {
			delete(s.roles, k)
		}
	}
}
