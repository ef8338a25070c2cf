package pipeline_test

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/revelations-studio/deploybot/internal/demo"
)

// A Neon branch starts with its parent's role passwords. These tests check
// that the connection strings the bot hands out — to a preview's Workers
// and migration, and to a push's test stages — carry a password of the
// branch's own, which does not open production.

// branchDatabase is the name of a Neon branch's database on the simulator's
// server.
func (e *env) branchDatabase(branch string) string {
	e.t.Helper()
	for _, b := range e.s.Sandbox.Neon.Snapshot().Projects[0].Branches {
		if b.Name == branch {
			return b.Database
		}
	}
	e.t.Fatalf("no branch %s", branch)
	return ""
}

// credentials are a connection string's user and password.
func credentials(t *testing.T, uri string) (user, password string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		t.Fatalf("not a connection string with credentials (%v)", err)
	}
	password, _ = u.User.Password()
	return u.User.Username(), password
}

// onDatabase is uri aimed at another database, same credentials.
func onDatabase(t *testing.T, uri, db string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

// currentDatabase connects to uri and names the database it reached.
func (e *env) currentDatabase(uri string) (string, error) {
	conn, err := pgx.Connect(e.ctx, uri)
	if err != nil {
		return "", err
	}
	defer conn.Close(e.ctx)
	var db string
	err = conn.QueryRow(e.ctx, "SELECT current_database()").Scan(&db)
	return db, err
}

func refusedPassword(err error) bool {
	var pge *pgconn.PgError
	return errors.As(err, &pge) && pge.Code == "28P01"
}

// previewURL is the DATABASE_URL secret of PR 1's Workers, which must all
// have the same.
func (e *env) previewURL() string {
	e.t.Helper()
	var got string
	for _, script := range e.s.Resources().Scripts {
		if !strings.HasSuffix(script, "-preview-1") {
			continue
		}
		v, ok := e.s.Sandbox.Cloudflare.SecretValue(script, "DATABASE_URL")
		if !ok || v == "" {
			e.t.Fatalf("worker %s has no DATABASE_URL", script)
		}
		if got != "" && v != got {
			e.t.Fatalf("the preview's Workers got different DATABASE_URLs")
		}
		got = v
	}
	if got == "" {
		e.t.Fatal("no preview Workers")
	}
	return got
}

func TestPreviewDatabaseURLHasTheBranchsOwnPassword(t *testing.T) {
	e := start(t)
	project := e.s.Sandbox.NeonProject.ID
	prod := e.s.Sandbox.Neon.ConnectionURL(project, "production")
	_, prodPassword := credentials(t, prod)
	prodDB := e.branchDatabase("production")

	pr, _ := e.open("feature/passwords", map[string]string{"web/src/pw.js": "export {}\n"}, false)
	e.event(pr, "opened")
	e.idle()
	prDB := e.branchDatabase("pr-1")

	first := e.previewURL()
	user, password := credentials(t, first)
	if password == "" || password == prodPassword || strings.Contains(first, prodPassword) {
		t.Fatal("the preview's DATABASE_URL carries production's password (or none)")
	}
	if db, err := e.currentDatabase(first); err != nil || db != prDB {
		t.Fatalf("the preview's DATABASE_URL reached %q (%v), want pr-1's database %q", db, err, prDB)
	}
	if !e.tableExists("pr-1", "users") {
		t.Error("the migration did not run with the new password")
	}
	if _, err := e.currentDatabase(onDatabase(t, first, prodDB)); !refusedPassword(err) {
		t.Fatalf("the preview's credentials (%s) on production: %v, want 28P01", user, err)
	}
	// Production keeps its password.
	if now := e.s.Sandbox.Neon.ConnectionURL(project, "production"); now != prod {
		t.Fatal("production's connection string changed")
	}
	if _, err := e.currentDatabase(prod); err != nil {
		t.Fatalf("production after the preview: %v", err)
	}

	// Later runs keep the branch's own password, so a later run that fails
	// before redeploying leaves the live preview able to reach its data.
	e.push(pr, map[string]string{"web/src/pw.js": "export const x = 1;\n"})
	e.event(pr, "synchronize")
	e.idle()
	if second := e.previewURL(); second != first {
		t.Fatal("a later run changed the password of a branch that already had its own")
	}

	// A branch reset from its parent gets a new one again: the old string
	// stops working, the new one works.
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	e.say(pr, "ada", "/redeploy --reset-db")
	e.idle()
	third := e.previewURL()
	if third == first {
		t.Fatal("/redeploy --reset-db kept the old password")
	}
	if _, err := e.currentDatabase(first); !refusedPassword(err) {
		t.Fatalf("the DATABASE_URL before the reset: %v, want 28P01", err)
	}
	if db, err := e.currentDatabase(third); err != nil || db != prDB {
		t.Fatalf("the new DATABASE_URL reached %q (%v), want %q", db, err, prDB)
	}
}

func TestTestStagesDatabaseURLHasTheBranchsOwnPassword(t *testing.T) {
	e := start(t)
	project := e.s.Sandbox.NeonProject.ID
	_, prodPassword := credentials(t, e.s.Sandbox.Neon.ConnectionURL(project, "production"))
	prodDB := e.branchDatabase("production")

	// The integration stage keeps the DATABASE_URL it was given where the
	// test can read it once the run (and its branch) is gone.
	saved := filepath.Join(e.shared, "database_url")
	files, err := e.s.SampleFiles()
	e.must(err)
	sha := e.pushBranch("feature/stage-password", "Keep the URL", map[string]string{
		"tests/integration.sh": files["tests/integration.sh"] + "printf '%s' \"$DATABASE_URL\" > '" + saved + "'\n",
	})
	e.idle()
	if c := e.stageCheck(sha, "integration"); c.Conclusion != "success" {
		t.Fatalf("integration stage: %s (%s)", c.Conclusion, c.OutputTitle)
	}
	raw, err := os.ReadFile(saved)
	if err != nil {
		t.Fatalf("the stage did not save its DATABASE_URL: %v", err)
	}
	uri := string(raw)
	_, password := credentials(t, uri)
	if password == "" || password == prodPassword || strings.Contains(uri, prodPassword) {
		t.Fatal("the test stage's DATABASE_URL carries production's password (or none)")
	}
	// The stage used it on its own branch (it passed); on production's
	// database the same credentials are refused.
	if _, err := e.currentDatabase(onDatabase(t, uri, prodDB)); !refusedPassword(err) {
		t.Fatalf("the test stage's credentials on production: %v, want 28P01", err)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}
