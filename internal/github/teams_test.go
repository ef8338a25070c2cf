package github

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/retry"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// TestTeamMember: only an active membership counts; an invitation, a user
// outside the team and a team the App cannot see are "no" without an
// error; a missing "Members: read" permission is an error that says so;
// other failures are errors naming the team, never a quiet "no".
func TestTeamMember(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	must(t, e.sim.CreateOrg(owner))
	must(t, e.sim.CreateTeam(owner, "deployers"))
	must(t, e.sim.AddTeamMember(owner, "deployers", "alice", "active"))
	must(t, e.sim.AddTeamMember(owner, "deployers", "bob", "pending"))

	for _, c := range []struct {
		team, user string
		want       bool
	}{
		{"deployers", "alice", true},
		{"deployers", "bob", false},
		{"deployers", "carol", false},
		{"ghosts", "alice", false},
	} {
		got, err := e.rep.TeamMember(ctx, owner, c.team, c.user)
		if err != nil || got != c.want {
			t.Errorf("%s in @%s/%s: %v, %v; want %v", c.user, owner, c.team, got, err, c.want)
		}
	}
	// Asked again, the answer is revalidated (304) and still right.
	must(t, e.sim.RemoveTeamMember(owner, "deployers", "alice"))
	if got, err := e.rep.TeamMember(ctx, owner, "deployers", "alice"); err != nil || got {
		t.Errorf("after removal: %v, %v", got, err)
	}
	must(t, e.sim.AddTeamMember(owner, "deployers", "bob", "active"))
	if got, err := e.rep.TeamMember(ctx, owner, "deployers", "bob"); err != nil || !got {
		t.Errorf("after accepting the invitation: %v, %v", got, err)
	}

	// A secondary rate limit is a 403 too: waited out, not taken for a
	// missing permission.
	path := "/orgs/" + owner + "/teams/deployers/memberships/bob"
	e.sim.Faults().Set(fault.Rule{Method: "GET", Path: path, Times: 1, Status: http.StatusForbidden, RetryAfter: 2 * time.Second})
	if got, err := e.rep.TeamMember(ctx, owner, "deployers", "bob"); err != nil || !got {
		t.Errorf("after a secondary rate limit: %v, %v", got, err)
	}

	e.sim.Faults().Set(fault.Rule{Method: "GET", Path: path, Times: 100, Status: http.StatusBadGateway})
	_, err := e.rep.TeamMember(ctx, owner, "deployers", "bob")
	if err == nil || !retry.Transient(err) || !strings.Contains(err.Error(), "@acme/deployers") || errors.Is(err, ErrMissingPermission) {
		t.Errorf("GitHub failing: %v, want a transient error naming the team", err)
	}
	e.sim.Faults().Set()

	e.sim.SetMembersPermission(false)
	_, err = e.rep.TeamMember(ctx, owner, "deployers", "bob")
	if !errors.Is(err, ErrMissingPermission) || retry.Transient(err) {
		t.Fatalf("without Members: read: %v, want ErrMissingPermission", err)
	}
	for _, want := range []string{`"Members: read"`, "members=read", "@acme/deployers", `"bob"`, repo} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
