package neon

import (
	"context"
	"fmt"
	"net/url"
	"strings"
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
	Protected bool   `json:"protected"`
}

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
// The strings hold a password: never log them.
func (c *Client) ConnectionURIs(ctx context.Context, projectID, branchID, database, role string) (URIs, error) {
	fail := func(err error) (URIs, error) {
		return URIs{}, fmt.Errorf("neon: connection URI of branch %s in project %s: %w", branchID, projectID, err)
	}
	if database == "" || role == "" {
		db, owner, err := c.defaultDatabase(ctx, projectID, branchID, database)
		if err != nil {
			return fail(err)
		}
		if database == "" {
			database = db
		}
		if role == "" {
			role = owner
		}
	}
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
