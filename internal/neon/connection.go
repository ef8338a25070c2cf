package neon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// Endpoint is a compute endpoint serving a branch.
type Endpoint struct {
	ID           string `json:"id"`
	BranchID     string `json:"branch_id"`
	Host         string `json:"host"`
	Type         string `json:"type"` // read_write | read_only
	CurrentState string `json:"current_state"`
}

// Database is a database on a branch.
type Database struct {
	Name      string `json:"name"`
	OwnerName string `json:"owner_name"`
}

// Role is a Postgres role on a branch.
type Role struct {
	Name      string `json:"name"`
	BranchID  string `json:"branch_id,omitempty"`
	Protected bool   `json:"protected"`
	// Password is set only in the answer of ResetRolePassword.
	Password Password `json:"password,omitempty"`
}

// Password is a role's password. It prints and marshals as "[redacted]", so
// that logging a Role (or an error holding one) cannot leak it; string(p)
// is the password.
type Password string

func (Password) String() string   { return "[redacted]" }
func (Password) GoString() string { return `"[redacted]"` }

// MarshalJSON keeps the password out of JSON logs.
func (Password) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// URIs are the two ways to connect to a branch's database: Pooled through
// Neon's PgBouncer (for the application), Direct for migrations and
// anything that needs session state.
type URIs struct {
	Pooled string
	Direct string
}

// ConnectionURIs returns the pooled and direct connection strings of a
// branch's database as role. Empty database or role are looked up from the
// branch: its only database (or "neondb" among several) and that
// database's owner.
//
// The strings hold the role's current password: never log them. On a
// branch whose role was never reset that is its parent's password (Neon
// copies roles into a child); give code that should not reach the parent
// ResetConnectionURIs instead.
func (c *Client) ConnectionURIs(ctx context.Context, projectID, branchID, database, role string) (URIs, error) {
	fail := func(err error) (URIs, error) {
		return URIs{}, fmt.Errorf("neon: connection URI of branch %s in project %s: %w", branchID, projectID, err)
	}
	database, role, err := c.resolve(ctx, projectID, branchID, database, role)
	if err != nil {
		return fail(err)
	}
	return c.connectionURIs(ctx, projectID, branchID, database, role, fail)
}

// OwnConnectionURIs returns connection strings of branch b's database that
// open b only: a branch starts with its parent's passwords, so the role's
// is reset, once. owned is the id of the branch the caller recorded as
// already having its own password: when it is b's, the password stays and
// the strings carry it (a run that fails later leaves the live preview
// able to connect); a branch recreated since has another id and is reset
// again. It returns the id to record.
func (c *Client) OwnConnectionURIs(ctx context.Context, projectID string, b Branch, owned string) (URIs, string, error) {
	if owned == b.ID {
		u, err := c.ConnectionURIs(ctx, projectID, b.ID, "", "")
		return u, owned, err
	}
	u, err := c.ResetConnectionURIs(ctx, projectID, b.ID, "", "")
	if err != nil {
		return URIs{}, owned, err
	}
	return u, b.ID, nil
}

// ResetConnectionURIs gives role on the branch a new password and returns
// connection strings that carry it, so that they open this branch only:
// a child branch starts with its parent's passwords, and whoever reads a
// connection string handed to a preview or a test run must not learn the
// one of production. Empty database or role are chosen as ConnectionURIs
// does. Connections made with the old password stop working, and Neon
// drops the branch's open sessions.
//
// Repeating it is harmless (the last password wins); the strings hold the
// password set by the last reset this call made, after Neon has put it in
// force.
func (c *Client) ResetConnectionURIs(ctx context.Context, projectID, branchID, database, role string) (URIs, error) {
	fail := func(err error) (URIs, error) {
		return URIs{}, fmt.Errorf("neon: connection URI with a new password of branch %s in project %s: %w", branchID, projectID, err)
	}
	database, role, err := c.resolve(ctx, projectID, branchID, database, role)
	if err != nil {
		return fail(err)
	}
	r, err := c.ResetRolePassword(ctx, projectID, branchID, role)
	if err != nil {
		return URIs{}, err
	}
	uris, err := c.connectionURIs(ctx, projectID, branchID, database, role, fail)
	if err != nil {
		return URIs{}, err
	}
	// connection_uri answers the password Neon stores, which is ours
	// unless someone reset it again meanwhile. Ours is the one this call
	// is sure of (and saw take effect), so the strings carry it either way:
	// a newer reset makes them fail to connect, never open another branch.
	for _, u := range []*string{&uris.Pooled, &uris.Direct} {
		if *u, err = withPassword(*u, string(r.Password)); err != nil {
			return fail(fmt.Errorf("database %q role %q: %w", database, role, err))
		}
	}
	return uris, nil
}

// ResetRolePassword gives role on the branch a new password and waits until
// Neon has put it in force (until then the old one still works). The
// answer's Role carries the new password.
//
// Unlike other creating calls it is retried after 5xx answers and dropped
// connections too: a repeated reset only sets yet another password, and
// the answer that arrives carries the one that was set last.
func (c *Client) ResetRolePassword(ctx context.Context, projectID, branchID, role string) (Role, error) {
	fail := func(err error) (Role, error) {
		return Role{}, fmt.Errorf("neon: reset password of role %q on branch %s in project %s: %w", role, branchID, projectID, err)
	}
	var out struct {
		Role       Role        `json:"role"`
		Operations []Operation `json:"operations"`
	}
	p := c.retry
	p.Retryable = repeatable(p.Retryable)
	path := projectPath(projectID, "branches", branchID, "roles", role, "reset_password")
	if _, err := c.send(ctx, p, "POST", path, nil, nil, &out); err != nil {
		return fail(err)
	}
	if out.Role.Password == "" {
		return fail(errors.New("Neon answered no password"))
	}
	if err := c.WaitOperations(ctx, projectID, out.Operations); err != nil {
		return fail(err)
	}
	return out.Role, nil
}

// repeatable retries a call that is safe to repeat as if it were
// idempotent, deferring to the policy's own rule when it has one.
func repeatable(rule func(*http.Request, *http.Response, error) bool) func(*http.Request, *http.Response, error) bool {
	if rule == nil {
		rule = retry.Retryable
	}
	return func(req *http.Request, resp *http.Response, err error) bool {
		if req != nil {
			req = req.Clone(req.Context())
			req.Method = http.MethodPut
		}
		return rule(req, resp, err)
	}
}

// withPassword returns the connection string raw with password instead of
// the one it holds.
func withPassword(raw, password string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.User.Username() == "" {
		// Not the error: it would quote the string, password and all.
		return "", errors.New("Neon answered a connection string without a user")
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String(), nil
}

// resolve fills in an empty database or role as ConnectionURIs documents.
func (c *Client) resolve(ctx context.Context, projectID, branchID, database, role string) (string, string, error) {
	if database != "" && role != "" {
		return database, role, nil
	}
	db, owner, err := c.defaultDatabase(ctx, projectID, branchID, database)
	if err != nil {
		return "", "", err
	}
	if database == "" {
		database = db
	}
	if role == "" {
		role = owner
	}
	return database, role, nil
}

func (c *Client) connectionURIs(ctx context.Context, projectID, branchID, database, role string, fail func(error) (URIs, error)) (URIs, error) {
	var uris URIs
	for _, pooled := range []bool{true, false} {
		q := url.Values{
			"branch_id":     {branchID},
			"database_name": {database},
			"role_name":     {role},
			"pooled":        {fmt.Sprint(pooled)},
		}
		var out struct {
			URI string `json:"uri"`
		}
		if _, err := c.do(ctx, "GET", projectPath(projectID, "connection_uri"), q, nil, &out); err != nil {
			return fail(fmt.Errorf("database %q role %q: %w", database, role, err))
		}
		if pooled {
			uris.Pooled = out.URI
		} else {
			uris.Direct = out.URI
		}
	}
	return uris, nil
}

// defaultDatabase picks the database to connect to and a role that may: the
// named database (or the branch's only one, or "neondb") and its owner, or
// the first unprotected role when the owner is unknown.
func (c *Client) defaultDatabase(ctx context.Context, projectID, branchID, want string) (db, role string, err error) {
	var dbs struct {
		Databases []Database `json:"databases"`
	}
	if _, err := c.do(ctx, "GET", projectPath(projectID, "branches", branchID, "databases"), nil, nil, &dbs); err != nil {
		return "", "", fmt.Errorf("list databases: %w", err)
	}
	var pick *Database
	for i, d := range dbs.Databases {
		switch {
		case want != "" && d.Name == want,
			want == "" && len(dbs.Databases) == 1,
			want == "" && d.Name == "neondb":
			pick = &dbs.Databases[i]
		}
		if pick != nil {
			break
		}
	}
	if pick == nil {
		names := make([]string, 0, len(dbs.Databases))
		for _, d := range dbs.Databases {
			names = append(names, d.Name)
		}
		if want != "" {
			return "", "", fmt.Errorf("branch has no database %q (has %s)", want, strings.Join(names, ", "))
		}
		return "", "", fmt.Errorf("cannot choose a database among [%s]: name one", strings.Join(names, ", "))
	}
	if pick.OwnerName != "" {
		return pick.Name, pick.OwnerName, nil
	}
	var roles struct {
		Roles []Role `json:"roles"`
	}
	if _, err := c.do(ctx, "GET", projectPath(projectID, "branches", branchID, "roles"), nil, nil, &roles); err != nil {
		return "", "", fmt.Errorf("list roles: %w", err)
	}
	for _, r := range roles.Roles {
		if !r.Protected {
			return pick.Name, r.Name, nil
		}
	}
	return "", "", fmt.Errorf("branch has no unprotected role to connect to database %q as", pick.Name)
}
