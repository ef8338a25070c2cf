package neonsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/apispec"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type sim struct {
	*Server
	url     string
	key     string
	project Project
}

func start(t *testing.T, opts Options) *sim {
	t.Helper()
	opts.AdminURL = pgtest.ServerURL(t)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	p, err := s.CreateProject(context.Background(), "codex")
	if err != nil {
		t.Fatal(err)
	}
	key := opts.APIKey
	if key == "" {
		key = "test-key"
	}
	return &sim{Server: s, url: srv.URL + "/api/v2", key: key, project: p}
}

type answer struct {
	status int
	header http.Header
	body   []byte
	req    *http.Request
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", a.status, err, a.body)
	}
	return m
}

// call sends a raw request, as any client would.
func (s *sim) call(t *testing.T, method, path, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: data, req: req}
}

// keys lists the JSON paths of v: object keys joined by '.', array items as
// "[]", and maps whose keys are data (annotations, values) as "*".
func keys(v any, prefix string, out map[string]bool) {
	switch t := v.(type) {
	case map[string]any:
		dynamic := strings.HasSuffix(prefix, "annotations") || strings.HasSuffix(prefix, ".value") ||
			prefix == "value" || strings.HasSuffix(prefix, "pg_settings")
		for k, c := range t {
			if dynamic {
				k = "*"
			}
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			keys(c, p, out)
		}
	case []any:
		for _, c := range t {
			keys(c, prefix+"[]", out)
		}
	}
}

func TestResponseShapes(t *testing.T) {
	s := start(t, Options{})
	pid := s.project.ID
	v := apispec.MustLoad("neon").Validator()

	created := s.call(t, "POST", "/projects/"+pid+"/branches",
		`{"branch":{"name":"pr-1"},"endpoints":[{"type":"read_write"}],"annotation_value":{"deploybot-pr":"1"}}`)
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	br := created.json(t)["branch"].(map[string]any)
	bid := br["id"].(string)
	eid := created.json(t)["endpoints"].([]any)[0].(map[string]any)["id"].(string)
	// The start_compute operation, which names its endpoint as the recorded one does.
	opID := created.json(t)["operations"].([]any)[1].(map[string]any)["id"].(string)
	patched := s.call(t, "PATCH", "/projects/"+pid+"/branches/"+bid, `{"branch":{"name":"pr-1b"}}`)

	cases := []struct {
		recorded string
		got      answer
		// optional lists recorded keys the simulator may leave out: Neon
		// sends them only in some states (pending_state while changing,
		// pagination.next while more pages follow, …).
		optional []string
	}{
		{"POST_projects_project_id_branches.201.json", created,
			[]string{"endpoints[].last_active", "endpoints[].pending_state", "endpoints[].settings.pg_settings", "endpoints[].settings.pg_settings.*"}},
		{"GET_projects_id_branches.200.json", s.call(t, "GET", "/projects/"+pid+"/branches", ""),
			[]string{"branches[].pending_state", "branches[].created_by.image", "pagination.next"}},
		{"GET_projects_project_id_branches_branch_id.200.json", s.call(t, "GET", "/projects/"+pid+"/branches/"+bid, ""), nil},
		{"PATCH_projects_project_id_branches_branch_id.200.json", patched, nil},
		{"GET_projects_project_id_branches_branch_id_endpoints.200.json", s.call(t, "GET", "/projects/"+pid+"/branches/"+bid+"/endpoints", ""),
			[]string{"endpoints[].last_active", "endpoints[].pending_state", "endpoints[].settings.pg_settings", "endpoints[].settings.pg_settings.*"}},
		{"GET_projects_id_branches_id_databases.200.json", s.call(t, "GET", "/projects/"+pid+"/branches/"+bid+"/databases", ""), nil},
		{"GET_projects_id_branches_id_roles.200.json", s.call(t, "GET", "/projects/"+pid+"/branches/"+bid+"/roles", ""), nil},
		{"GET_projects_id_connection_uri.200.json", s.call(t, "GET", "/projects/"+pid+"/connection_uri?branch_id="+bid+"&database_name=neondb&role_name=neondb_owner&pooled=true", ""), nil},
		{"GET_projects_id_endpoints.200.json", s.call(t, "GET", "/projects/"+pid+"/endpoints", ""),
			[]string{"endpoints[].last_active", "endpoints[].pending_state"}},
		{"GET_projects_id_endpoints_id.200.json", s.call(t, "GET", "/projects/"+pid+"/endpoints/"+eid, ""),
			[]string{"endpoint.last_active", "endpoint.pending_state"}},
		{"GET_projects_id_operations.200.json", s.call(t, "GET", "/projects/"+pid+"/operations", ""),
			[]string{"pagination", "pagination.cursor"}},
		{"GET_projects_id_operations_id.200.json", s.call(t, "GET", "/projects/"+pid+"/operations/"+opID, ""), nil},
		{"DELETE_projects_project_id_branches_branch_id.200.json", s.call(t, "DELETE", "/projects/"+pid+"/branches/"+bid, ""), nil},
		{"POST_projects.400.error.json", s.call(t, "POST", "/projects/"+pid+"/branches", `{"branch":{"name":7}}`), nil},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.recorded, ".json"), func(t *testing.T) {
			if err := v.CheckResponse(c.got.req, c.got.status, c.got.header, c.got.body); err != nil {
				t.Errorf("simulator's answer breaks the API description: %v\n%s", err, c.got.body)
			}
			raw, err := os.ReadFile(filepath.Join("testdata", "recorded", c.recorded))
			if err != nil {
				t.Fatal(err)
			}
			var rec any
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			want, got := map[string]bool{}, map[string]bool{}
			keys(rec, "", want)
			keys(c.got.json(t), "", got)
			optional := map[string]bool{}
			for _, k := range c.optional {
				optional[k] = true
			}
			var missing, extra []string
			for k := range want {
				if !got[k] && !optional[k] {
					missing = append(missing, k)
				}
			}
			for k := range got {
				if !want[k] {
					extra = append(extra, k)
				}
			}
			sort.Strings(missing)
			sort.Strings(extra)
			if len(missing) > 0 {
				t.Errorf("keys Neon sends that the simulator does not: %v", missing)
			}
			if len(extra) > 0 {
				t.Logf("keys only the simulator sends (allowed by the description): %v", extra)
			}
		})
	}
}

func TestLockedWhileOperationsRun(t *testing.T) {
	s := start(t, Options{OperationDelay: time.Hour})
	pid := s.project.ID
	a := s.call(t, "POST", "/projects/"+pid+"/branches", `{"branch":{"name":"busy"},"endpoints":[{"type":"read_write"}]}`)
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	b := a.json(t)["branch"].(map[string]any)
	if b["current_state"] != "init" || b["pending_state"] != "ready" {
		t.Errorf("new branch state %v → %v, want init → ready while its operations run", b["current_state"], b["pending_state"])
	}
	for _, op := range a.json(t)["operations"].([]any) {
		if st := op.(map[string]any)["status"]; st != "running" {
			t.Errorf("operation status %v, want running", st)
		}
	}
	bid := b["id"].(string)
	for _, c := range []struct{ method, path, body string }{
		{"DELETE", "/projects/" + pid + "/branches/" + bid, ""},
		{"PATCH", "/projects/" + pid + "/branches/" + bid, `{"branch":{"name":"x"}}`},
		{"POST", "/projects/" + pid + "/branches", `{"branch":{"name":"child","parent_id":"` + bid + `"}}`},
	} {
		got := s.call(t, c.method, c.path, c.body)
		m := got.json(t)
		if got.status != http.StatusLocked || m["message"] != lockedMsg {
			t.Errorf("%s %s while busy: %d %s, want 423 in Neon's shape", c.method, c.path, got.status, got.body)
		}
	}
	// Reads still work, and the branch was not changed.
	if got := s.call(t, "GET", "/projects/"+pid+"/branches/"+bid, ""); got.status != 200 ||
		got.json(t)["branch"].(map[string]any)["name"] != "busy" {
		t.Fatalf("GET busy branch: %d %s", got.status, got.body)
	}
}

func TestRequestsBreakingTheDescriptionAreRejected(t *testing.T) {
	s := start(t, Options{APIKey: "secret"})
	pid := s.project.ID
	// The right key is needed; another key gets Neon's 401.
	req, _ := http.NewRequest("GET", s.url+"/projects/"+pid+"/branches", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong key: %d", resp.StatusCode)
	}

	for _, c := range []struct {
		method, path, body string
		status             int
		mention            string
	}{
		{"POST", "/projects/" + pid + "/branches", `{"branch":{"name":["pr-1"]}}`, 400, "branch.name"},
		{"POST", "/projects/" + pid + "/branches", `{"endpoints":[{"type":"writer"}]}`, 400, "endpoints.0.type"},
		{"POST", "/projects/" + pid + "/branches", `{"endpoints":[{}]}`, 400, "type"},
		{"GET", "/projects/" + pid + "/connection_uri?database_name=neondb", "", 400, "role_name"},
		{"GET", "/projects/" + pid + "/branches?sort_by=size", "", 400, "sort_by"},
		{"GET", "/projects/" + pid + "/branches/does-not-exist", "", 404, "branch not found"},
		{"GET", "/projects/" + pid + "/nothing", "", 404, "no route"},
		{"POST", "/projects/" + pid + "/branches", `{"branch":{"name":"x","init_source":"everything"}}`, 400, "init_source"},
	} {
		got := s.call(t, c.method, c.path, c.body)
		m := got.json(t)
		msg, _ := m["message"].(string)
		if _, hasCode := m["code"]; got.status != c.status || !hasCode || !strings.Contains(msg, c.mention) {
			t.Errorf("%s %s %s: %d %s, want %d in Neon's error shape naming %q", c.method, c.path, c.body, got.status, got.body, c.status, c.mention)
		}
	}
	if n := len(s.Snapshot().Projects[0].Branches); n != 1 {
		t.Fatalf("rejected requests created branches: %d branches", n)
	}
}

func TestBranchesAreRealDatabases(t *testing.T) {
	s := start(t, Options{})
	pid := s.project.ID
	ctx := context.Background()
	exec := func(url, sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(url, table string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	prod := s.DatabaseURL(pid, "production")
	exec(prod, "CREATE TABLE users (id serial PRIMARY KEY, name text); INSERT INTO users (name) VALUES ('ada'), ('bob')")
	// A session left open on the parent must not block branching.
	hold, err := pgx.Connect(ctx, prod)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close(ctx)

	full := s.call(t, "POST", "/projects/"+pid+"/branches", `{"branch":{"name":"full"},"endpoints":[{"type":"read_write"}]}`)
	schema := s.call(t, "POST", "/projects/"+pid+"/branches", `{"branch":{"name":"schema","init_source":"schema-only"},"endpoints":[{"type":"read_write"}]}`)
	if full.status != 201 || schema.status != 201 {
		t.Fatalf("create: %d %s / %d %s", full.status, full.body, schema.status, schema.body)
	}
	if got := count(s.DatabaseURL(pid, "full"), "users"); got != 2 {
		t.Errorf("parent-data branch has %d users, want 2", got)
	}
	if got := count(s.DatabaseURL(pid, "schema"), "users"); got != 0 {
		t.Errorf("schema-only branch has %d users, want the table with 0 rows", got)
	}
	if _, ok := schema.json(t)["branch"].(map[string]any)["parent_id"]; ok {
		t.Error("schema-only branch reports a parent")
	}
	// connection_uri answers a URL that works.
	bid := full.json(t)["branch"].(map[string]any)["id"].(string)
	uri := s.call(t, "GET", "/projects/"+pid+"/connection_uri?branch_id="+bid+"&database_name=neondb&role_name=neondb_owner", "").json(t)["uri"].(string)
	exec(uri, "INSERT INTO users (name) VALUES ('eve')")
	if got, parent := count(uri, "users"), count(prod, "users"); got != 3 || parent != 2 {
		t.Errorf("after writing to the branch: branch %d, parent %d users; want 3 and 2", got, parent)
	}
	// Reset from the parent brings the parent's data back.
	exec(prod, "INSERT INTO users (name) VALUES ('zed')")
	prodID := s.project.DefaultBranchID
	if a := s.call(t, "POST", "/projects/"+pid+"/branches/"+bid+"/restore", `{"source_branch_id":"`+prodID+`"}`); a.status != 200 {
		t.Fatalf("restore: %d %s", a.status, a.body)
	}
	if got := count(uri, "users"); got != 3 {
		t.Errorf("after reset the branch has %d users, want the parent's 3", got)
	}
	// Delete drops the database.
	if a := s.call(t, "DELETE", "/projects/"+pid+"/branches/"+bid, ""); a.status != 200 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if _, err := pgx.Connect(ctx, uri); err == nil {
		t.Error("deleted branch's database still accepts connections")
	}
	if a := s.call(t, "DELETE", "/projects/"+pid+"/branches/"+bid, ""); a.status != 204 {
		t.Errorf("delete again: %d, want 204 (already deleted)", a.status)
	}
	if a := s.call(t, "DELETE", "/projects/"+pid+"/branches/"+prodID, ""); a.status != 400 {
		t.Errorf("delete default branch: %d, want 400", a.status)
	}
}

func TestStateAndFaults(t *testing.T) {
	s := start(t, Options{Seed: 3})
	pid := s.project.ID
	s.Faults().Set(fault.Rule{Method: "GET", Times: 1, Status: 503})
	if a := s.call(t, "GET", "/projects/"+pid+"/branches", ""); a.status != 503 || !bytes.Contains(a.body, []byte(`"message"`)) {
		t.Fatalf("injected 503: %d %s", a.status, a.body)
	}
	if a := s.call(t, "GET", "/projects/"+pid+"/branches", ""); a.status != 200 {
		t.Fatalf("after the one-shot: %d", a.status)
	}
	s.call(t, "POST", "/projects/"+pid+"/branches", `{"branch":{"name":"pr-2"},"annotation_value":{"deploybot-pr":"2"}}`)
	data, err := json.Marshal(s.State())
	if err != nil {
		t.Fatal(err)
	}
	st := s.Snapshot()
	if st.FaultsInjected != 1 || st.Requests["GET /projects/{project_id}/branches"] != 1 || st.Requests["POST /projects/{project_id}/branches"] != 1 {
		t.Errorf("state counts: %s", data)
	}
	bs := st.Projects[0].Branches
	if len(bs) != 2 || bs[1].Name != "pr-2" || bs[1].ParentID != s.project.DefaultBranchID || bs[1].Annotations["deploybot-pr"] != "2" || bs[1].Database == "" {
		t.Errorf("branches in state: %+v", bs)
	}
}
