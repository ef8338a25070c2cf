package ghsim

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

const routeTeamMembership = "GET /orgs/{org}/teams/{team_slug}/memberships/{username}"

// getTeamMembership is GET /orgs/{org}/teams/{team_slug}/memberships/{username}:
// a team-membership (url, role, state) when the user is in the team, active
// or pending. Without the "Members: read" permission GitHub answers 403 and
// names, in X-Accepted-GitHub-Permissions, the permission that would do;
// with it, an unknown organisation, an unknown team and a user outside the
// team are all the same 404, so that an App learns nothing about teams it
// cannot see.
func (s *Server) getTeamMembership(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/teams/members#get-team-membership-for-a-user"
	if s.orgs.membersWithheld {
		return fail(http.StatusForbidden, "Resource not accessible by integration", doc).
			withHeader("X-Accepted-GitHub-Permissions", "members=read")
	}
	ctx := r.Context()
	o := s.orgs.byLogin[strings.ToLower(apispec.PathParam(ctx, "org"))]
	if o == nil {
		return fail(http.StatusNotFound, "Not Found", doc)
	}
	t := o.teams[strings.ToLower(apispec.PathParam(ctx, "team_slug"))]
	if t == nil {
		return fail(http.StatusNotFound, "Not Found", doc)
	}
	m, found := t.members[strings.ToLower(apispec.PathParam(ctx, "username"))]
	if !found {
		return fail(http.StatusNotFound, "Not Found", doc)
	}
	return ok(map[string]any{
		"url":   fmt.Sprintf("%s/organizations/%d/team/%d/memberships/%s", s.baseURL, o.id, t.id, url.PathEscape(m.login)),
		"role":  m.role,
		"state": m.state,
	})
}
