package neon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/retry"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/internal/sandbox/neonsim"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const apiKey = "neon-test-key-do-not-log"

type env struct {
	sim     *neonsim.Server
	url     string
	project string
	client  *neon.Client
	waits   *waits
}

// waits records the client's retry waits instead of sleeping through them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

func setup(t *testing.T, opts neonsim.Options) *env {
	t.Helper()
	opts.AdminURL = pgtest.ServerURL(t)
	opts.APIKey = apiKey
	sim, err := neonsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := sim.Close(context.Background()); err != nil {
			t.Errorf("close simulator: %v", err)
		}
	})
	p, err := sim.CreateProject(context.Background(), "codex")
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	c := neon.New(srv.URL+"/api/v2", apiKey, srv.Client()).
		WithRetry(retry.Policy{Attempts: 6, Sleep: w.sleep}).
		WithPolling(time.Millisecond, 20*time.Millisecond)
	return &env{sim: sim, url: srv.URL + "/api/v2", project: p.ID, client: c, waits: w}
}

func (e *env) branches(t *testing.T) []neonsim.BranchState {
	t.Helper()
	return e.sim.Snapshot().Projects[0].Branches
}

// createRaw creates a branch behind the client's back, as a person or
// another tool would, from a raw request body.
func (e *env) createRaw(t *testing.T, body string) {
	t.Helper()
	if status, answer := e.postRaw(t, body); status != 201 {
		t.Fatalf("create: %d %s", status, answer)
	}
}

// postRaw sends a raw create-branch request and returns Neon's answer.
func (e *env) postRaw(t *testing.T, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+"/projects/"+e.project+"/branches", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

func (e *env) count(route string) int { return e.sim.Snapshot().Requests[route] }

func preview(pr int) neon.BranchOptions {
	return neon.BranchOptions{
		Name: "pr-" + strconv.Itoa(pr), Parent: "production",
		Tags: neon.Tags{Repo: "revelations-studio/codex", Purpose: neon.PurposePreview, PR: pr},
	}
}

func TestEnsureBranchIsGetOrCreate(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	b, err := e.client.EnsureBranch(ctx, e.project, preview(7))
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "pr-7" || b.CurrentState != "ready" || !b.Owned() ||
		b.Annotations[neon.AnnotationPR] != "7" || b.Annotations[neon.AnnotationRepo] != "revelations-studio/codex" ||
		b.Annotations[neon.AnnotationPurpose] != "preview" {
		t.Fatalf("branch = %+v", b)
	}
	again, err := e.client.EnsureBranch(ctx, e.project, preview(7))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != b.ID || len(e.branches(t)) != 2 || e.count("POST /projects/{project_id}/branches") != 1 {
		t.Fatalf("second EnsureBranch: id %s (first %s), %d branches, %d creates", again.ID, b.ID, len(e.branches(t)), e.count("POST /projects/{project_id}/branches"))
	}
	st := e.sim.Snapshot().Projects[0]
	rw := 0
	for _, ep := range st.Endpoints {
		if ep.BranchID == b.ID && ep.Type == "read_write" {
			rw++
		}
	}
	if rw != 1 {
		t.Fatalf("branch has %d read-write endpoints, want 1", rw)
	}
	if b.ParentID != st.Branches[0].ID {
		t.Fatalf("parent %s, want production %s", b.ParentID, st.Branches[0].ID)
	}
}

// A create whose answer never arrives must not lead to a second branch.
func TestEnsureBranchAfterLostResponse(t *testing.T) {
	for _, c := range []struct {
		name string
		rule fault.Rule
	}{
		{"connection reset after the branch was made", fault.Rule{Reset: true, AfterServe: true}},
		{"502 after the branch was made", fault.Rule{Status: 502, AfterServe: true}},
		{"503 before anything happened", fault.Rule{Status: 503}},
		{"connection reset before anything happened", fault.Rule{Reset: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, neonsim.Options{})
			rule := c.rule
			rule.Method, rule.Path, rule.Times = "POST", "/api/v2/projects/"+e.project+"/branches", 1
			e.sim.Faults().Set(rule)
			b, err := e.client.EnsureBranch(context.Background(), e.project, preview(8))
			if err != nil {
				t.Fatal(err)
			}
			named := 0
			for _, s := range e.branches(t) {
				if s.Name == "pr-8" {
					named++
				}
			}
			if named != 1 || b.Name != "pr-8" || e.sim.Faults().Injected() != 1 {
				t.Fatalf("%d branches named pr-8, injected %d", named, e.sim.Faults().Injected())
			}
			// Requests the injector failed first never reach the API, so
			// the API sees exactly one create in every case.
			if got := e.count("POST /projects/{project_id}/branches"); got != 1 {
				t.Fatalf("the API served %d creates, want 1", got)
			}
		})
	}
}

func TestRetriesHonourRetryAfterAndLocks(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	if _, err := e.client.EnsureBranch(ctx, e.project, preview(9)); err != nil {
		t.Fatal(err)
	}
	list := "/api/v2/projects/" + e.project + "/branches"
	e.sim.Faults().Set(
		fault.Rule{Method: "GET", Path: list, Times: 1, Status: 429, RetryAfter: 3 * time.Second},
	)
	before := len(e.waits.all())
	if _, ok, err := e.client.FindBranch(ctx, e.project, "pr-9"); err != nil || !ok {
		t.Fatalf("FindBranch under 429: %v %v", ok, err)
	}
	if w := e.waits.all()[before:]; len(w) != 1 || w[0] != 3*time.Second {
		t.Fatalf("waits %v, want one of 3s (the Retry-After)", w)
	}
	for _, status := range []int{423, 503, 500} {
		e.sim.Faults().Set(fault.Rule{Method: "GET", Path: list, Times: 2, Status: status})
		if _, ok, err := e.client.FindBranch(ctx, e.project, "pr-9"); err != nil || !ok {
			t.Fatalf("FindBranch under two %d: %v %v", status, ok, err)
		}
	}
	if got := e.sim.Faults().Injected(); got != 7 {
		t.Fatalf("injected %d failures, want 7", got)
	}
	// DELETE under a lock is retried too (Neon: 423 is always safe to retry).
	b, _, _ := e.client.FindBranch(ctx, e.project, "pr-9")
	e.sim.Faults().Set(fault.Rule{Method: "DELETE", Times: 1, Status: 423})
	if err := e.client.DeleteBranch(ctx, e.project, b.ID); err != nil {
		t.Fatal(err)
	}
	if len(e.branches(t)) != 1 {
		t.Fatal("branch not deleted")
	}
}

// A real 423 from running operations: the client waits them out.
func TestDeleteWaitsOutRunningOperations(t *testing.T) {
	e := setup(t, neonsim.Options{OperationDelay: 300 * time.Millisecond})
	ctx := context.Background()
	// Create the branch behind the client's back, so its operations still run.
	e.createRaw(t, `{"branch":{"name":"busy"},"endpoints":[{"type":"read_write"}],"annotation_value":{"deploybot-creator":"deploybot","deploybot-repo":"revelations-studio/codex","deploybot-purpose":"test"}}`)
	c := neon.New(e.url, apiKey, nil).WithRetry(retry.Policy{Attempts: 20, Base: 20 * time.Millisecond, Max: 100 * time.Millisecond})
	if err := c.DeleteBranchNamed(ctx, e.project, "busy", neon.Tags{Repo: "revelations-studio/codex", Purpose: neon.PurposeTest}); err != nil {
		t.Fatal(err)
	}
	if len(e.branches(t)) != 1 {
		t.Fatal("branch not deleted")
	}
	if e.count("DELETE /projects/{project_id}/branches/{branch_id}") < 2 {
		t.Fatal("the first DELETE should have met 423 Locked")
	}
}

func TestEnsureBranchWaitsForOperations(t *testing.T) {
	e := setup(t, neonsim.Options{OperationDelay: 100 * time.Millisecond})
	start := time.Now()
	b, err := e.client.EnsureBranch(context.Background(), e.project, preview(10))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 100*time.Millisecond || b.CurrentState != "ready" {
		t.Fatalf("returned after %v in state %s; want ready after the operations", time.Since(start), b.CurrentState)
	}
	if e.count("GET /projects/{project_id}/operations/{operation_id}") == 0 {
		t.Fatal("operations were not polled")
	}
}

func TestDeleteMissingBranchSucceeds(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	if err := e.client.DeleteBranch(ctx, e.project, "br-gone-00000000"); err != nil {
		t.Fatalf("DeleteBranch of a missing id: %v", err)
	}
	if err := e.client.DeleteBranchNamed(ctx, e.project, "pr-404", preview(404).Tags); err != nil {
		t.Fatalf("DeleteBranchNamed of a missing name: %v", err)
	}
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, url, table string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return -1 // no such table
	}
	return n
}

func TestMigrationOnPreviewChangesOnlyThatBranch(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	prod := e.sim.DatabaseURL(e.project, "production")
	exec(t, prod, "CREATE TABLE posts (id serial PRIMARY KEY, title text); INSERT INTO posts (title) VALUES ('hello'), ('world')")

	b, err := e.client.EnsureBranch(ctx, e.project, preview(11))
	if err != nil {
		t.Fatal(err)
	}
	uris, err := e.client.ConnectionURIs(ctx, e.project, b.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if uris.Pooled == "" || uris.Direct == "" || uris.Pooled == uris.Direct {
		t.Fatalf("URIs: pooled and direct must both be set and differ")
	}
	exec(t, uris.Direct, "CREATE TABLE comments (id serial PRIMARY KEY, post_id int REFERENCES posts); INSERT INTO posts (title) VALUES ('preview only')")
	if got := count(t, uris.Pooled, "comments"); got != 0 {
		t.Fatalf("migrated table on the preview: count %d, want 0 rows", got)
	}
	if got := count(t, prod, "comments"); got != -1 {
		t.Fatal("the migration reached the parent branch")
	}
	if p, b := count(t, prod, "posts"), count(t, uris.Direct, "posts"); p != 2 || b != 3 {
		t.Fatalf("posts: parent %d, preview %d; want 2 and 3", p, b)
	}

	// Resetting from the parent undoes the preview's migration.
	if err := e.client.ResetBranch(ctx, e.project, "pr-11", preview(11).Tags); err != nil {
		t.Fatal(err)
	}
	if got := count(t, uris.Direct, "comments"); got != -1 {
		t.Fatal("reset kept the preview's table")
	}
	if got := count(t, uris.Direct, "posts"); got != 2 {
		t.Fatalf("after reset the preview has %d posts, want the parent's 2", got)
	}
}

// TestSchemaOnlyBranchHasTablesButNoRows: a schema-only branch starts with
// the parent's tables and none of its rows. It is made from the project's
// shared schema-only copy of the parent, so it has a parent to be reset
// from (a schema-only branch of its own would not).
func TestSchemaOnlyBranchHasTablesButNoRows(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	exec(t, e.sim.DatabaseURL(e.project, "production"), "CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('customer data')")
	o := neon.BranchOptions{
		Name: "push-main-abc123", InitSource: neon.InitSchemaOnly, ExpiresAt: time.Now().Add(time.Hour),
		Tags: neon.Tags{Repo: "revelations-studio/codex", Purpose: neon.PurposeTest},
	}
	b, err := e.client.EnsureBranch(ctx, e.project, o)
	if err != nil {
		t.Fatal(err)
	}
	if b.ExpiresAt == nil || b.ParentID == "" {
		t.Fatalf("branch = %+v, want a child with an expiry", b)
	}
	uris, err := e.client.ConnectionURIs(ctx, e.project, b.ID, "neondb", "neondb_owner")
	if err != nil {
		t.Fatal(err)
	}
	if got := count(t, uris.Direct, "secrets"); got != 0 {
		t.Fatalf("schema-only branch: secrets count %d, want the table with 0 rows", got)
	}
	exec(t, uris.Direct, "INSERT INTO secrets VALUES ('test data')")
	if err := e.client.ResetBranch(ctx, e.project, o.Name, o.Tags); err != nil {
		t.Fatalf("ResetBranch of a schema-only branch: %v", err)
	}
	if got := count(t, uris.Direct, "secrets"); got != 0 {
		t.Fatalf("after reset: %d rows, want the empty schema again", got)
	}
}

// TestSchemaOnlyBranchesRespectTheRootLimit: a project allows few root
// branches (3 on Neon's Free plan, its first branch included) and Neon
// makes every schema-only branch a root. The client makes them children of
// one shared schema-only root instead, so any number fit; the root goes
// with the last of them.
func TestSchemaOnlyBranchesRespectTheRootLimit(t *testing.T) {
	e := setup(t, neonsim.Options{RootBranches: 3})
	ctx := context.Background()
	raw := func(name string) (int, string) {
		return e.postRaw(t, `{"branch":{"name":"`+name+`","init_source":"schema-only"}}`)
	}
	if st, _ := raw("a-persons-copy"); st != http.StatusCreated { // root 2 of 3
		t.Fatalf("second root: %d", st)
	}
	// Five schema-only branches through the client take one more root.
	opts := func(i int) neon.BranchOptions {
		return neon.BranchOptions{Name: fmt.Sprintf("pr-%d", i), InitSource: neon.InitSchemaOnly, Tags: neon.Tags{Repo: "revelations-studio/codex", Purpose: neon.PurposePreview, PR: i}}
	}
	for i := range 5 {
		b, err := e.client.EnsureBranch(ctx, e.project, opts(i+1))
		if err != nil {
			t.Fatalf("schema-only branch %d: %v", i+1, err)
		}
		if b.ParentID == "" {
			t.Fatalf("schema-only branch %d is a root", i+1)
		}
	}
	// The limit is real: a fourth root is refused as Neon refuses it.
	if st, body := raw("one-too-many"); st != http.StatusUnprocessableEntity || !strings.Contains(body, "ROOT_BRANCHES_LIMIT_EXCEEDED") {
		t.Fatalf("fourth root: %d %s, want 422 ROOT_BRANCHES_LIMIT_EXCEEDED", st, body)
	}
	for i := range 5 {
		if err := e.client.DeleteBranchNamed(ctx, e.project, opts(i+1).Name, opts(i+1).Tags); err != nil {
			t.Fatal(err)
		}
	}
	if _, found, err := e.client.FindBranch(ctx, e.project, neon.SchemaRootName("production")); err != nil || found {
		t.Fatalf("the shared root outlived its last branch (%v, %v)", found, err)
	}
}

func TestListBranchesOnlyTheBotsOwn(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	for _, pr := range []int{1, 2} {
		if _, err := e.client.EnsureBranch(ctx, e.project, preview(pr)); err != nil {
			t.Fatal(err)
		}
	}
	other := preview(3)
	other.Tags.Repo = "someone/else"
	if _, err := e.client.EnsureBranch(ctx, e.project, other); err != nil {
		t.Fatal(err)
	}
	// A person's branch named like ours, without the annotations.
	req, _ := http.NewRequest("POST", e.url+"/projects/"+e.project+"/branches", strings.NewReader(`{"branch":{"name":"pr-99"}}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	names := func(bs []neon.Branch) string {
		var n []string
		for _, b := range bs {
			n = append(n, b.Name)
		}
		sort.Strings(n)
		return strings.Join(n, ",")
	}
	own, err := e.client.ListBranches(ctx, e.project, neon.Filter{NamePrefix: "pr-", Repo: "revelations-studio/codex", Purpose: neon.PurposePreview})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(own); got != "pr-1,pr-2" {
		t.Fatalf("own previews = %s", got)
	}
	all, err := e.client.ListBranches(ctx, e.project, neon.Filter{NamePrefix: "pr-", Foreign: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(all); got != "pr-1,pr-2,pr-3,pr-99" {
		t.Fatalf("all pr- branches = %s", got)
	}
}

func TestErrorsNameTheResourceAndNeonsAnswer(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	_, _, err := e.client.FindBranch(ctx, "no-such-project", "pr-1")
	var ae *neon.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(err.Error(), "no-such-project") || !strings.Contains(err.Error(), "project not found") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), apiKey) {
		t.Fatal("error leaks the API key")
	}
	o := preview(5)
	o.Parent = "staging"
	if _, err := e.client.EnsureBranch(ctx, e.project, o); err == nil || !strings.Contains(err.Error(), `"staging"`) || !strings.Contains(err.Error(), `"pr-5"`) {
		t.Fatalf("missing parent: %v", err)
	}
	o = preview(6)
	o.InitSource = "everything"
	_, err = e.client.EnsureBranch(ctx, e.project, o)
	if neon.StatusOf(err) != 400 || !strings.Contains(err.Error(), "init_source") {
		t.Fatalf("bad init_source: %v", err)
	}
	if n := e.count("POST /projects/{project_id}/branches"); n != 1 {
		t.Fatalf("a refused create was repeated: %d POSTs", n)
	}
	// A wrong key: 401, not retried.
	bad := neon.New(e.url, "wrong", nil)
	if _, _, err := bad.FindBranch(ctx, e.project, "x"); neon.StatusOf(err) != 401 {
		t.Fatalf("wrong key: %v", err)
	}
}

// The simulator refuses what the official description refuses, whoever sends it.
func TestSimulatorRejectsInvalidRawRequest(t *testing.T) {
	e := setup(t, neonsim.Options{})
	req, _ := http.NewRequest("POST", e.url+"/projects/"+e.project+"/branches",
		strings.NewReader(`{"branch":{"name":"pr-1","protected":"yes"},"endpoints":[{"type":"read_write"}]}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "branch.protected") || !strings.Contains(string(body), `"code"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if len(e.branches(t)) != 1 {
		t.Fatal("the invalid request created a branch")
	}
}

// TestBranchesNotTheBotsAreLeftAlone: a branch with the name the bot wants
// but not made by it for this repository, purpose and pull request — a
// person's, another repository's, another PR's, the project's default — is
// neither reused, nor reset, nor deleted, and the error names it and who
// appears to own it.
func TestBranchesNotTheBotsAreLeftAlone(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	create := func(body string) { t.Helper(); e.createRaw(t, body) }
	create(`{"branch":{"name":"pr-12"},"endpoints":[{"type":"read_write"}]}`)
	create(`{"branch":{"name":"pr-13"},"endpoints":[{"type":"read_write"}],"annotation_value":{"deploybot-creator":"deploybot","deploybot-repo":"someone/else","deploybot-purpose":"preview","deploybot-pr":"13"}}`)
	create(`{"branch":{"name":"pr-14"},"endpoints":[{"type":"read_write"}],"annotation_value":{"deploybot-creator":"deploybot","deploybot-repo":"revelations-studio/codex","deploybot-purpose":"preview","deploybot-pr":"99"}}`)
	before := e.branches(t)

	for _, tc := range []struct {
		name, owner string
		pr          int
	}{
		{"pr-12", "no deploybot annotations: made by a person or another tool", 12},
		{"pr-13", "preview branch of someone/else#13", 13},
		{"pr-14", "preview branch of revelations-studio/codex#99", 14},
		{"production", "the project's default branch", 15},
	} {
		o := preview(tc.pr)
		o.Name = tc.name
		if tc.name == "production" {
			o.Parent = "" // the default branch as parent: the name alone collides
		}
		check := func(what string, err error) {
			t.Helper()
			var no *neon.NotOwnedError
			if !errors.As(err, &no) || !strings.Contains(err.Error(), `"`+tc.name+`"`) || !strings.Contains(err.Error(), tc.owner) {
				t.Errorf("%s %s: %v, want a refusal naming it and %q", what, tc.name, err, tc.owner)
			}
		}
		_, err := e.client.EnsureBranch(ctx, e.project, o)
		check("EnsureBranch", err)
		check("ResetBranch", e.client.ResetBranch(ctx, e.project, tc.name, o.Tags))
		check("DeleteBranchNamed", e.client.DeleteBranchNamed(ctx, e.project, tc.name, o.Tags))
	}
	if after := e.branches(t); len(after) != len(before) {
		t.Errorf("branches %d before, %d after: something was deleted or created", len(before), len(after))
	}
	if n := e.count("POST /projects/{project_id}/branches/{branch_id}/restore"); n != 0 {
		t.Errorf("%d restores of branches that are not the bot's", n)
	}
	if n := e.count("DELETE /projects/{project_id}/branches/{branch_id}"); n != 0 {
		t.Errorf("%d deletes of branches that are not the bot's", n)
	}
}

// TestLockedOutlastsTheRetryPolicy: Neon answers 423 Locked while the
// project's operations run, which can take minutes; the client waits them
// out beyond its retry policy's attempts (about half a minute with the
// defaults), up to its lock wait, and then gives up with the 423.
func TestLockedOutlastsTheRetryPolicy(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	create := "/api/v2/projects/" + e.project + "/branches"
	// 40 refusals: more than the policy's 6 attempts in each of
	// EnsureBranch's 4 tries, which is where the client gave up before.
	e.sim.Faults().Set(fault.Rule{Method: "POST", Path: create, Times: 40, Status: http.StatusLocked})
	before := len(e.waits.all())
	if _, err := e.client.EnsureBranch(ctx, e.project, preview(21)); err != nil {
		t.Fatalf("EnsureBranch under 40 × 423: %v", err)
	}
	var waited time.Duration
	for _, w := range e.waits.all()[before:] {
		waited += w
	}
	if waited < 30*time.Second {
		t.Errorf("waited %s in all; the lock outlasted the retry policy, so more than its ~30s", waited)
	}

	// A lock that outlasts the lock wait fails the call with the 423.
	short := e.client.WithLockWait(time.Minute)
	e.sim.Faults().Set(fault.Rule{Method: "POST", Path: create, Times: 1000, Status: http.StatusLocked})
	before = len(e.waits.all())
	_, err := short.EnsureBranch(ctx, e.project, preview(22))
	if neon.StatusOf(err) != http.StatusLocked {
		t.Fatalf("EnsureBranch under a lock that never ends: %v, want the 423", err)
	}
	waited = 0
	for _, w := range e.waits.all()[before:] {
		waited += w
	}
	if waited > 10*time.Minute {
		t.Errorf("waited %s for a lock wait of a minute", waited)
	}
}

// TestOwnConnectionURIs: a branch's role gets a password of its own once:
// the first call resets it (and names the branch to record), a call with
// that record keeps it, and a recreated branch (another id) is reset again.
func TestOwnConnectionURIs(t *testing.T) {
	e := setup(t, neonsim.Options{})
	ctx := context.Background()
	parent, err := e.client.ConnectionURIs(ctx, e.project, e.sim.Snapshot().Projects[0].Branches[0].ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.client.EnsureBranch(ctx, e.project, preview(31))
	if err != nil {
		t.Fatal(err)
	}
	first, owned, err := e.client.OwnConnectionURIs(ctx, e.project, b, "")
	if err != nil || owned != b.ID || first.Direct == parent.Direct {
		t.Fatalf("first: owned %q, %v; the strings must differ from the parent's", owned, err)
	}
	again, owned2, err := e.client.OwnConnectionURIs(ctx, e.project, b, owned)
	if err != nil || owned2 != b.ID || again.Direct != first.Direct {
		t.Fatalf("with the record: owned %q, %v, same strings %v; want the password kept", owned2, err, again.Direct == first.Direct)
	}
	other := b
	other.ID = "br-recreated-00000000"
	if _, _, err := e.client.OwnConnectionURIs(ctx, e.project, b, other.ID); err != nil {
		t.Fatal(err)
	}
	if now, err := e.client.ConnectionURIs(ctx, e.project, b.ID, "", ""); err != nil || now.Direct == first.Direct {
		t.Fatalf("a record naming another branch id must reset the password again (%v)", err)
	}
}

// TestNoRoomForTheSchemaRoot: when even the one shared root does not fit
// (the allowance is used up by other roots), the error says what to do.
func TestNoRoomForTheSchemaRoot(t *testing.T) {
	e := setup(t, neonsim.Options{RootBranches: 1}) // production fills it
	_, err := e.client.EnsureBranch(context.Background(), e.project, neon.BranchOptions{
		Name: "pr-1", InitSource: neon.InitSchemaOnly, Tags: neon.Tags{Repo: "revelations-studio/codex", Purpose: neon.PurposePreview, PR: 1},
	})
	if neon.StatusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "ROOT_BRANCHES_LIMIT_EXCEEDED") ||
		!strings.Contains(err.Error(), "Delete a schema-only branch nobody uses") {
		t.Fatalf("no room for the shared root: %v", err)
	}
}
