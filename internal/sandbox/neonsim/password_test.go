package neonsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// connectErr connects to uri and reports why it failed (nil on success).
func connectErr(t *testing.T, uri string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// authFailed reports whether err is PostgreSQL's refusal of a password.
func authFailed(err error) bool {
	var pge *pgconn.PgError
	return errors.As(err, &pge) && pge.Code == "28P01"
}

func password(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		t.Fatal("URI without a password")
	}
	return pw
}

// withPassword is uri with another password.
func withPassword(t *testing.T, uri, pw string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

// withDatabase is uri naming another database.
func withDatabase(t *testing.T, uri, db string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

func (s *sim) branchURI(t *testing.T, bid string) string {
	t.Helper()
	a := s.call(t, "GET", "/projects/"+s.project.ID+"/connection_uri?branch_id="+bid+"&database_name=neondb&role_name=neondb_owner", "")
	if a.status != 200 {
		t.Fatalf("connection_uri: %d %s", a.status, a.body)
	}
	return a.json(t)["uri"].(string)
}

func (s *sim) createBranch(t *testing.T, name string) string {
	t.Helper()
	a := s.call(t, "POST", "/projects/"+s.project.ID+"/branches", `{"branch":{"name":"`+name+`"},"endpoints":[{"type":"read_write"}]}`)
	if a.status != 201 {
		t.Fatalf("create %s: %d %s", name, a.status, a.body)
	}
	return a.json(t)["branch"].(map[string]any)["id"].(string)
}

func TestBranchRolePasswords(t *testing.T) {
	s := start(t, Options{})
	pid := s.project.ID
	ctx := context.Background()
	prod := s.ConnectionURL(pid, "production")
	if err := connectErr(t, prod); err != nil {
		t.Fatalf("production's own URI: %v", err)
	}
	if u, _ := url.Parse(prod); u.User.Username() != "neondb_owner" {
		t.Errorf("URI user %q, want Neon's role name", u.User.Username())
	}
	bid := s.createBranch(t, "pr-1")
	child := s.branchURI(t, bid)
	// As on Neon, a new branch's role has its parent's password…
	if password(t, child) != password(t, prod) {
		t.Fatal("a new branch's role should start with its parent's password")
	}
	// …so the parent's credentials open the child.
	if err := connectErr(t, withDatabase(t, prod, strings.TrimPrefix(mustURL(t, child).Path, "/"))); err != nil {
		t.Fatalf("parent's credentials on the new child: %v", err)
	}
	held, err := pgx.Connect(ctx, child)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)

	a := s.call(t, "POST", "/projects/"+pid+"/branches/"+bid+"/roles/neondb_owner/reset_password", "")
	if a.status != 200 {
		t.Fatalf("reset_password: %d %s", a.status, a.body)
	}
	if err := apispec.MustLoad("neon").Validator().CheckResponse(a.req, a.status, a.header, a.body); err != nil {
		t.Errorf("answer breaks the API description: %v\n%s", err, a.body)
	}
	role := a.json(t)["role"].(map[string]any)
	fresh, _ := role["password"].(string)
	if fresh == "" || fresh == password(t, prod) || role["name"] != "neondb_owner" || role["branch_id"] != bid {
		t.Fatalf("reset answered role %v", role)
	}
	if ops := a.json(t)["operations"].([]any); len(ops) == 0 {
		t.Error("reset answered no operations")
	}

	// The stale URI (the parent's password) no longer opens the child.
	if err := connectErr(t, child); !authFailed(err) {
		t.Fatalf("stale password on the child: %v, want 28P01", err)
	}
	// A session opened before the reset was dropped, as Neon's compute does.
	if err := held.Ping(ctx); err == nil {
		t.Error("a session from before the reset survived it")
	}
	// The API now hands out the new password, and it works.
	now := s.branchURI(t, bid)
	if password(t, now) != fresh {
		t.Fatal("connection_uri does not carry the new password")
	}
	if err := connectErr(t, now); err != nil {
		t.Fatalf("new password on the child: %v", err)
	}
	if got := s.call(t, "GET", "/projects/"+pid+"/branches/"+bid+"/roles/neondb_owner/reveal_password", "").json(t)["password"]; got != fresh {
		t.Error("reveal_password does not answer the new password")
	}
	// The child's password does not open the parent, whose own still works.
	if err := connectErr(t, withPassword(t, prod, fresh)); !authFailed(err) {
		t.Fatalf("child's password on production: %v, want 28P01", err)
	}
	if err := connectErr(t, prod); err != nil {
		t.Fatalf("production after the child's reset: %v", err)
	}
	// Nor do a wrong user or an unknown database get in.
	u := mustURL(t, now)
	u.User = url.UserPassword("postgres", fresh)
	if err := connectErr(t, u.String()); !authFailed(err) {
		t.Errorf("another user with the branch's password: %v, want 28P01", err)
	}
	var pge *pgconn.PgError
	if err := connectErr(t, withDatabase(t, now, "postgres")); !errors.As(err, &pge) || pge.Code != "3D000" {
		t.Errorf("a database that is no branch's: %v, want 3D000", err)
	}
	if a := s.call(t, "POST", "/projects/"+pid+"/branches/"+bid+"/roles/sally/reset_password", ""); a.status != 404 {
		t.Errorf("reset of an unknown role: %d %s", a.status, a.body)
	}
	// The simulator's state (served at /state) never shows a password.
	if st, _ := jsonString(s.State()); strings.Contains(st, fresh) || strings.Contains(st, password(t, prod)) {
		t.Error("state shows a password")
	}
}

// Neon: "The old password remains valid until last operation finishes."
func TestResetPasswordTakesEffectWhenItsOperationFinishes(t *testing.T) {
	s := start(t, Options{OperationDelay: time.Hour})
	pid := s.project.ID
	prodID := s.project.DefaultBranchID
	old := s.branchURI(t, prodID)
	a := s.call(t, "POST", "/projects/"+pid+"/branches/"+prodID+"/roles/neondb_owner/reset_password", "")
	if a.status != 200 {
		t.Fatalf("reset_password: %d %s", a.status, a.body)
	}
	op := a.json(t)["operations"].([]any)[0].(map[string]any)
	if op["status"] != "running" || op["action"] != "apply_config" {
		t.Errorf("operation %v, want a running apply_config", op)
	}
	fresh := a.json(t)["role"].(map[string]any)["password"].(string)
	if err := connectErr(t, old); err != nil {
		t.Errorf("old password while the reset runs: %v", err)
	}
	if err := connectErr(t, withPassword(t, old, fresh)); !authFailed(err) {
		t.Errorf("new password before the reset finished: %v, want 28P01", err)
	}
	if a := s.call(t, "POST", "/projects/"+pid+"/branches/"+prodID+"/roles/neondb_owner/reset_password", ""); a.status != 423 {
		t.Errorf("second reset while the first runs: %d, want 423", a.status)
	}
}

// Cancelling a query through the proxy reaches the server.
func TestCancelThroughTheProxy(t *testing.T) {
	s := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.ConnectionURL(s.project.ID, "production"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	admin, err := pgx.Connect(ctx, s.DatabaseURL(s.project.ID, "production"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	pid := conn.PgConn().PID()
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		// Cancel once the query runs: the server shows it as active.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			var active bool
			if admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active')`, pid).Scan(&active) == nil && active {
				_ = conn.PgConn().CancelRequest(ctx)
				return
			}
			<-tick.C
		}
	}()
	_, err = conn.Exec(ctx, "SELECT pg_sleep(50)")
	cancel()
	<-watcher
	var pge *pgconn.PgError
	if !errors.As(err, &pge) || pge.Code != "57014" {
		t.Fatalf("query: %v, want 57014 (canceled)", err)
	}
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
