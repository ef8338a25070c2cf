package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	gh "github.com/google/go-github/v66/github"
)

// ErrMissingPermission is matched (errors.Is) by errors for requests GitHub
// refused because the App was not granted a permission they need. Asking
// again will not help: the App's owner has to grant the permission and the
// installation to accept it.
var ErrMissingPermission = errors.New("the GitHub App lacks a permission")

// TeamMember reports whether user is an active member of the team
// @org/teamSlug. An invited user who has not accepted yet ("pending") is
// not; nor is anyone when the team does not exist or the App cannot see it
// (GitHub answers all of these with the same 404).
//
// It needs the App's organization permission "Members: read"; without it
// the error matches ErrMissingPermission and says which permission to grant.
func (r *Reporter) TeamMember(ctx context.Context, org, teamSlug, user string) (bool, error) {
	if !validLogin(user) {
		return false, nil // not a login GitHub gives out: in no team
	}
	if !validLogin(org) || !validSlug(teamSlug) {
		return false, fmt.Errorf("github: team @%s/%s: not a valid organisation and team slug", org, teamSlug)
	}
	m, resp, err := r.client.Teams.GetTeamMembershipBySlug(ctx, org, teamSlug, user)
	if err != nil {
		op := fmt.Sprintf("get membership of team @%s/%s for %q", org, teamSlug, user)
		switch {
		case resp != nil && resp.StatusCode == http.StatusNotFound:
			return false, nil
		case isPermissionRefusal(resp, err):
			return false, r.wrap(op, resp, missingPermissionError{need: `organization permission "Members: read"`, accepted: resp.Header.Get("X-Accepted-GitHub-Permissions"), err: err})
		}
		return false, r.wrap(op, resp, err)
	}
	return m.GetState() == "active", nil
}

// isPermissionRefusal tells GitHub's "Resource not accessible by
// integration" from a 403 that is a rate limit (which go-github reports as
// its own error types, and the rate limiter has normally waited out).
func isPermissionRefusal(resp *gh.Response, err error) bool {
	var primary *gh.RateLimitError
	var secondary *gh.AbuseRateLimitError
	return resp != nil && resp.StatusCode == http.StatusForbidden && !errors.As(err, &primary) && !errors.As(err, &secondary)
}

// missingPermissionError keeps GitHub's answer while saying, in words an
// operator can act on, which permission the App lacks.
type missingPermissionError struct {
	need     string // e.g. `organization permission "Members: read"`
	accepted string // GitHub's X-Accepted-GitHub-Permissions, e.g. "members=read"
	err      error
}

func (e missingPermissionError) Error() string {
	msg := "the GitHub App lacks the " + e.need + " (grant it in the App's settings, then accept it on the installation)"
	if e.accepted != "" {
		msg += "; GitHub accepts " + e.accepted
	}
	return msg + ": " + e.err.Error()
}

func (e missingPermissionError) Unwrap() error        { return e.err }
func (e missingPermissionError) Is(target error) bool { return target == ErrMissingPermission }

// validSlug reports whether s can be a team slug (lower-case letters,
// digits, "-" and "_"), so it cannot change the request path it goes into.
func validSlug(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
