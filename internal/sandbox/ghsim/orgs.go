package ghsim

import (
	"fmt"
	"strings"
)

// orgs are the simulator's organisations and their teams. A repository's
// owner may be one of them (CreateOrg with the owner's login), which is how
// a test gives the owner of a repository teams. Logins and slugs are keyed
// in lower case: GitHub compares them without regard to case.
type orgs struct {
	byLogin map[string]*org
	// membersWithheld is an installation that was not granted the
	// organization permission "Members: read", without which GitHub
	// refuses to tell the App who is in a team.
	membersWithheld bool
}

type org struct {
	id    int64
	login string
	teams map[string]*team // by slug
}

type team struct {
	id      int64
	slug    string
	members map[string]teamMember // by login
}

// teamMember is one membership: state "active", or "pending" while the
// invitation to the organization is not accepted.
type teamMember struct {
	login string
	role  string // member or maintainer
	state string
}

// CreateOrg creates the organisation login. The App's one installation
// covers it, as it covers every repository.
func (s *Server) CreateOrg(login string) error {
	if login == "" {
		return fmt.Errorf("ghsim: create organisation: login is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(login)
	if s.orgs.byLogin[key] != nil {
		return fmt.Errorf("ghsim: organisation %s exists", login)
	}
	if s.orgs.byLogin == nil {
		s.orgs.byLogin = map[string]*org{}
	}
	s.orgs.byLogin[key] = &org{id: s.newID(), login: login, teams: map[string]*team{}}
	return nil
}

// CreateTeam creates the team slug (as it appears in URLs, e.g.
// "deployers") in organisation orgLogin, which must exist.
func (s *Server) CreateTeam(orgLogin, slug string) error {
	if slug == "" || strings.ContainsAny(slug, "/ ") {
		return fmt.Errorf("ghsim: create team %q in %s: not a team slug", slug, orgLogin)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orgs.byLogin[strings.ToLower(orgLogin)]
	if o == nil {
		return fmt.Errorf("ghsim: create team %s: no organisation %q (CreateOrg first)", slug, orgLogin)
	}
	key := strings.ToLower(slug)
	if o.teams[key] != nil {
		return fmt.Errorf("ghsim: team @%s/%s exists", o.login, slug)
	}
	o.teams[key] = &team{id: s.newID(), slug: key, members: map[string]teamMember{}}
	return nil
}

// AddTeamMember makes user a member of team @orgLogin/slug, in state
// "active" (a member) or "pending" (invited, not a member yet). Adding a
// member again replaces the state.
func (s *Server) AddTeamMember(orgLogin, slug, user, state string) error {
	switch state {
	case "active", "pending":
	default:
		return fmt.Errorf("ghsim: add %q to @%s/%s: state %q is not active or pending", user, orgLogin, slug, state)
	}
	if user == "" {
		return fmt.Errorf("ghsim: add a member to @%s/%s: user is required", orgLogin, slug)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.team(orgLogin, slug)
	if err != nil {
		return err
	}
	t.members[strings.ToLower(user)] = teamMember{login: user, role: "member", state: state}
	return nil
}

// RemoveTeamMember takes user out of team @orgLogin/slug.
func (s *Server) RemoveTeamMember(orgLogin, slug, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.team(orgLogin, slug)
	if err != nil {
		return err
	}
	delete(t.members, strings.ToLower(user))
	return nil
}

// SetMembersPermission grants (the default) or withholds the App's
// organization permission "Members: read". Withheld, team membership
// lookups are refused with 403, as GitHub does for an App whose owner never
// granted the permission (or whose installation has not accepted it yet).
func (s *Server) SetMembersPermission(granted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orgs.membersWithheld = !granted
}

// team finds a team for the Go API. Callers hold s.mu.
func (s *Server) team(orgLogin, slug string) (*team, error) {
	o := s.orgs.byLogin[strings.ToLower(orgLogin)]
	if o == nil {
		return nil, fmt.Errorf("ghsim: no organisation %q", orgLogin)
	}
	t := o.teams[strings.ToLower(slug)]
	if t == nil {
		return nil, fmt.Errorf("ghsim: no team @%s/%s", o.login, slug)
	}
	return t, nil
}
