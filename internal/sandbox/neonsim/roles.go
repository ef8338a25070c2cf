package neonsim

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Databases, roles and their passwords, connection strings, and the
// proxy's authentication against them.

func (s *Server) databases(pid, bid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"databases": []any{s.databaseJSON(b)}}, nil
}

func (s *Server) roles(pid, bid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"roles": []any{s.roleJSON(b)}}, nil
}

// role checks that name is the branch's role: the simulator has one per
// branch (Options.Role).
func (s *Server) role(name string) *apiError {
	if name != s.opts.Role {
		return errf(http.StatusNotFound, "role %q not found", name)
	}
	return nil
}

// resetPassword gives the branch's role a new password. Like Neon, it
// answers the new password at once and puts it in force when the answer's
// operation finishes (the old one works until then); meanwhile the branch
// is busy, and the sessions on the branch are dropped, as a compute
// applying new settings drops them.
func (s *Server) resetPassword(pid, bid, roleName string) (int, any, *apiError) {
	p, b, now, done, err := s.changeBranch(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	defer done()
	if err := s.role(roleName); err != nil {
		return 0, nil, err
	}
	if p.busy(b.ID, now) {
		return 0, nil, errf(http.StatusLocked, lockedMsg)
	}
	epID := ""
	if rw := p.readWrite(b.ID); rw != nil {
		epID = rw.ID
	}
	op := s.op(p, b.ID, epID, "apply_config", now)
	b.PrevPassword, b.Password = b.livePassword(now), newPassword()
	b.PasswordFrom, b.RoleUpdatedAt = op.Done, now
	s.proxy.dropBranch(b.ID)
	role := s.roleJSON(b)
	role["password"] = b.Password
	return 200, map[string]any{"role": role, "operations": []any{s.opJSON(p, op, now)}}, nil
}

// revealPassword answers the role's stored password (the new one as soon
// as a reset was answered, as Neon stores it).
func (s *Server) revealPassword(pid, bid, roleName string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	if err := s.role(roleName); err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"password": b.Password}, nil
}

func (s *Server) connectionURI(pid string, q url.Values) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	var b *branch
	if bid := q.Get("branch_id"); bid != "" {
		if b = p.branches[bid]; b == nil {
			return 0, nil, errf(http.StatusNotFound, "branch not found")
		}
	} else {
		b = p.defaultBranch()
	}
	var ep *endpoint
	if eid := q.Get("endpoint_id"); eid != "" {
		if ep = p.endpoints[eid]; ep == nil || ep.BranchID != b.ID {
			return 0, nil, errf(http.StatusNotFound, "endpoint not found")
		}
	} else if ep = p.readWrite(b.ID); ep == nil {
		return 0, nil, errf(http.StatusNotFound, "branch %s has no read_write endpoint", b.ID)
	}
	if q.Get("database_name") != s.opts.Database {
		return 0, nil, errf(http.StatusNotFound, "database %q not found", q.Get("database_name"))
	}
	if err := s.role(q.Get("role_name")); err != nil {
		return 0, nil, err
	}
	pooled, _ := strconv.ParseBool(q.Get("pooled"))
	return 200, map[string]any{"uri": s.uri(b, pooled)}, nil
}

// uri is a working connection URL of the branch: the branch's role and its
// stored password, at the proxy, for the branch's database (its physical
// name: the proxy has one address for all endpoints, so the database
// tells the branch, where Neon uses the endpoint's host name). The pooled
// one differs only by application_name (there is no PgBouncer here), so a
// test can tell which one the bot used. Callers hold s.mu.
func (s *Server) uri(b *branch, pooled bool) string {
	app := "neonsim-direct"
	if pooled {
		app = "neonsim-pooler"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.opts.Role, b.Password),
		Host:     s.proxy.addr(),
		Path:     "/" + b.Database,
		RawQuery: url.Values{"sslmode": {"disable"}, "application_name": {app}}.Encode(),
	}
	return u.String()
}

// authenticate is the proxy's check: user must be the role of the branch
// whose database is database, and password the one in force. The answers
// are PostgreSQL's, so clients report them as a server would.
func (s *Server) authenticate(user, database, password string) (string, *pgproto3.ErrorResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b *branch
	for _, p := range s.projects {
		for _, c := range p.branches {
			if c.Database == database {
				b = c
			}
		}
	}
	if b == nil {
		return "", fatal("3D000", fmt.Sprintf("database %q does not exist", database))
	}
	live := b.livePassword(time.Now())
	if user != s.opts.Role || live == "" || subtle.ConstantTimeCompare([]byte(password), []byte(live)) != 1 {
		return "", fatal("28P01", fmt.Sprintf("password authentication failed for user %q", user))
	}
	return b.ID, nil
}
