package neon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/internal/sandbox/neonsim"
)

const resetRoute = "POST /projects/{project_id}/branches/{branch_id}/roles/{role_name}/reset_password"

func passwordOf(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return pw
}

// dial connects to uri and reports why it could not (nil when it could).
func dial(t *testing.T, uri string) error {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func refused(err error) bool {
	var pge *pgconn.PgError
	return errors.As(err, &pge) && pge.Code == "28P01"
}

// onDatabase is uri pointed at another URI's database (its path).
func onDatabase(t *testing.T, uri, other string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	o, err := url.Parse(other)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = o.Path
	return u.String()
}

func TestResetConnectionURIsKeepProductionsPasswordOut(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	exec(t, e.sim.DatabaseURL(e.project, "production"), "CREATE TABLE posts (id int); INSERT INTO posts VALUES (1)")
	prod := e.sim.ConnectionURL(e.project, "production")
	b, err := e.client.EnsureBranch(ctx, e.project, preview(12))
	if err != nil {
		t.Fatal(err)
	}
	inherited, err := e.client.ConnectionURIs(ctx, e.project, b.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if passwordOf(t, inherited.Direct) != passwordOf(t, prod) {
		t.Fatal("precondition: a new branch carries its parent's password (Neon copies roles)")
	}

	uris, err := e.client.ResetConnectionURIs(ctx, e.project, b.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	pw := passwordOf(t, uris.Direct)
	if pw == "" || pw == passwordOf(t, prod) || passwordOf(t, uris.Pooled) != pw || uris.Pooled == uris.Direct {
		t.Fatal("URIs must both carry one new password, not production's")
	}
	if got := count(t, uris.Direct, "posts"); got != 1 {
		t.Fatalf("the new URI reads %d posts on the branch, want 1", got)
	}
	if err := dial(t, uris.Pooled); err != nil {
		t.Fatalf("pooled URI: %v", err)
	}
	// Production's credentials no longer open the branch, the branch's never
	// opened production, and the strings handed out before are dead.
	if err := dial(t, onDatabase(t, prod, uris.Direct)); !refused(err) {
		t.Fatalf("production's credentials on the branch: %v, want 28P01", err)
	}
	if err := dial(t, onDatabase(t, uris.Direct, prod)); !refused(err) {
		t.Fatalf("the branch's credentials on production: %v, want 28P01", err)
	}
	if err := dial(t, inherited.Direct); !refused(err) {
		t.Fatalf("URI from before the reset: %v, want 28P01", err)
	}
	// Production itself is untouched.
	now, err := e.client.ConnectionURIs(ctx, e.project, e.branches(t)[0].ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if passwordOf(t, now.Direct) != passwordOf(t, prod) || dial(t, now.Direct) != nil {
		t.Fatal("resetting the branch changed production's password")
	}
	if e.count(resetRoute) != 1 {
		t.Fatalf("%d resets, want 1", e.count(resetRoute))
	}
}

// A reset whose answer is lost is sent again; the URIs carry the password
// of the last one, the one in force.
func TestResetPasswordAfterLostAnswer(t *testing.T) {
	for _, c := range []struct {
		name string
		rule fault.Rule
	}{
		{"connection reset after the reset was made", fault.Rule{Reset: true, AfterServe: true}},
		{"502 after the reset was made", fault.Rule{Status: 502, AfterServe: true}},
		{"500 before anything happened", fault.Rule{Status: 500}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, neonsim.Options{})
			ctx := context.Background()
			b, err := e.client.EnsureBranch(ctx, e.project, preview(13))
			if err != nil {
				t.Fatal(err)
			}
			rule := c.rule
			rule.Method, rule.Path, rule.Times = "POST", "/api/v2/projects/"+e.project+"/branches/"+b.ID+"/roles/", 1
			e.sim.Faults().Set(rule)
			uris, err := e.client.ResetConnectionURIs(ctx, e.project, b.ID, "neondb", "neondb_owner")
			if err != nil {
				t.Fatal(err)
			}
			served := 1
			if rule.AfterServe {
				served = 2 // the lost one set a password nobody learnt
			}
			if e.sim.Faults().Injected() != 1 || e.count(resetRoute) != served {
				t.Fatalf("injected %d faults, the API served %d resets (want %d)", e.sim.Faults().Injected(), e.count(resetRoute), served)
			}
			if passwordOf(t, uris.Direct) != passwordOf(t, e.sim.ConnectionURL(e.project, "pr-13")) {
				t.Fatal("the URIs do not carry the password in force")
			}
			if err := dial(t, uris.Direct); err != nil {
				t.Fatalf("URI after a retried reset: %v", err)
			}
		})
	}
}

// The reset's operation must finish before the new password works: the
// client waits for it.
func TestResetRolePasswordWaitsForItsOperation(t *testing.T) {
	e := setup(t, neonsim.Options{OperationDelay: 100 * time.Millisecond})
	ctx := context.Background()
	b, err := e.client.EnsureBranch(ctx, e.project, preview(14))
	if err != nil {
		t.Fatal(err)
	}
	polls := e.count("GET /projects/{project_id}/operations/{operation_id}")
	r, err := e.client.ResetRolePassword(ctx, e.project, b.ID, "neondb_owner")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "neondb_owner" || r.BranchID != b.ID || r.Password == "" {
		t.Fatalf("role = %+v", r)
	}
	if e.count("GET /projects/{project_id}/operations/{operation_id}") == polls {
		t.Fatal("the reset's operation was not waited for")
	}
	uri := e.sim.ConnectionURL(e.project, "pr-14")
	if passwordOf(t, uri) != string(r.Password) {
		t.Fatal("the answer's password is not the one Neon stores")
	}
	if err := dial(t, uri); err != nil {
		t.Fatalf("new password once ResetRolePassword returned: %v", err)
	}
	// Printing or logging the role shows no password.
	j, _ := json.Marshal(r)
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%+v %#v %s %q", r, r, r.Password, r.Password), string(j)} {
		if strings.Contains(s, string(r.Password)) {
			t.Fatalf("the password shows in %s", s)
		}
	}
}

func TestResetPasswordErrorsNameTheRole(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	b, err := e.client.EnsureBranch(ctx, e.project, preview(15))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.ResetRolePassword(ctx, e.project, b.ID, "sally")
	if neon.StatusOf(err) != 404 || !strings.Contains(err.Error(), `"sally"`) || !strings.Contains(err.Error(), b.ID) || !strings.Contains(err.Error(), e.project) {
		t.Fatalf("unknown role: %v", err)
	}
	if n := e.count(resetRoute); n != 1 {
		t.Fatalf("a refused reset was repeated: %d", n)
	}
	_, err = e.client.ResetConnectionURIs(ctx, e.project, "br-gone-00000000", "", "")
	if neon.StatusOf(err) != 404 || !strings.Contains(err.Error(), "br-gone-00000000") {
		t.Fatalf("missing branch: %v", err)
	}
}
