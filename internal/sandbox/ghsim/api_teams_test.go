package ghsim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// TestTeamMembership: a team of an organisation answers for its active and
// pending members with a team-membership as the description gives it; a
// user outside the team, an unknown team and an unknown organisation are
// the same 404; without the "Members: read" permission every lookup is a
// 403 naming the permission; and no lookup goes without an installation
// token.
func TestTeamMembership(t *testing.T) {
	s := newSim(t, Options{})
	s.seed()
	must(t, s.CreateOrg("acme"))
	must(t, s.CreateTeam("acme", "deployers"))
	must(t, s.AddTeamMember("acme", "deployers", "Alice", "active"))
	must(t, s.AddTeamMember("acme", "deployers", "bob", "pending"))
	auth := "token " + s.token()
	path := func(org, team, user string) string {
		return fmt.Sprintf("/orgs/%s/teams/%s/memberships/%s", org, team, user)
	}

	for user, want := range map[string]struct{ state, login string }{
		"alice": {"active", "Alice"}, "ALICE": {"active", "Alice"}, "bob": {"pending", "bob"},
	} {
		resp, body := s.do("GET", path("acme", "deployers", user), auth, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("membership of %s: %d %s", user, resp.StatusCode, body)
		}
		validateResponse(t, routeTeamMembership, 200, body)
		m := decode(t, body)
		u := fmt.Sprint(m["url"])
		if m["state"] != want.state || m["role"] != "member" || !strings.HasPrefix(u, s.url+"/organizations/") || !strings.HasSuffix(u, "/memberships/"+want.login) {
			t.Errorf("membership of %s: %v, want state %s", user, m, want.state)
		}
		// Same keys as GitHub's own example.
		example := apispec.MustLoad("github").Doc().Components.Examples["team-membership-response-if-user-is-a-team-maintainer"].Value.Value
		if missing, extra := keyDiff(example, any(m), ""); len(missing)+len(extra) > 0 {
			t.Errorf("membership answer: missing %v, extra %v", missing, extra)
		}
	}
	for _, p := range []string{
		path("acme", "deployers", "carol"), // not in the team
		path("acme", "admins", "alice"),    // no such team
		path("other", "deployers", "alice"),
	} {
		if resp, body := s.do("GET", p, auth, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", p, resp.StatusCode, body)
		}
	}
	must(t, s.RemoveTeamMember("acme", "deployers", "alice"))
	if resp, _ := s.do("GET", path("acme", "deployers", "alice"), auth, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed member: %d, want 404", resp.StatusCode)
	}

	if resp, _ := s.do("GET", path("acme", "deployers", "bob"), "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", resp.StatusCode)
	}

	s.SetMembersPermission(false)
	for _, p := range []string{path("acme", "deployers", "bob"), path("other", "x", "y")} {
		resp, body := s.do("GET", p, auth, nil)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Accepted-GitHub-Permissions") != "members=read" ||
			decode(t, body)["message"] != "Resource not accessible by integration" {
			t.Errorf("without Members: read, GET %s: %d %q %s", p, resp.StatusCode, resp.Header.Get("X-Accepted-GitHub-Permissions"), body)
		}
	}
	s.SetMembersPermission(true)
	if resp, body := s.do("GET", path("acme", "deployers", "bob"), auth, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("permission granted again: %d %s", resp.StatusCode, body)
	}
	if n := s.Snapshot().Responses[routeTeamMembership]; n[200] != 4 || n[404] != 4 || n[403] != 2 || n[401] != 1 {
		t.Errorf("answers counted %v", n)
	}
}

// TestTeamModel: teams live in organisations that exist; states are
// GitHub's two.
func TestTeamModel(t *testing.T) {
	s := newSim(t, Options{})
	for name, err := range map[string]error{
		"team without an organisation": s.CreateTeam("nobody", "x"),
		"empty organisation":           s.CreateOrg(""),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	must(t, s.CreateOrg("acme"))
	for name, err := range map[string]error{
		"organisation twice (any case)": s.CreateOrg("ACME"),
		"slug with a slash":             s.CreateTeam("acme", "a/b"),
		"member of an unknown team":     s.AddTeamMember("acme", "nope", "alice", "active"),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	must(t, s.CreateTeam("acme", "devs"))
	if err := s.CreateTeam("Acme", "Devs"); err == nil {
		t.Error("team twice (any case): no error")
	}
	if err := s.AddTeamMember("acme", "devs", "alice", "invited"); err == nil || !strings.Contains(err.Error(), "active or pending") {
		t.Errorf("unknown state: %v", err)
	}
}
