package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/handlers"
	"github.com/revelations-studio/deploybot/internal/intake"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/server"
	"github.com/revelations-studio/deploybot/pipeline"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const secret = "It's a Secret to Everybody"

type bot struct {
	url   string
	pool  *pgxpool.Pool
	queue *river.Client[pgx.Tx]

	mu       sync.Mutex
	observed []string // "event outcome" of each request, as Options.Observe was told
}

// outcomes counts what Options.Observe was told, by "event outcome".
func (b *bot) outcomes() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for _, o := range b.observed {
		out[o]++
	}
	return out
}

// lastOutcome is the outcome of the request answered last.
func (b *bot) lastOutcome() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.observed) == 0 {
		return ""
	}
	return b.observed[len(b.observed)-1]
}

func newBot(t *testing.T) *bot {
	t.Helper()
	pool := pgtest.NewDatabase(t)
	queue, err := pipeline.NewQueue(pool, pipeline.QueueOptions{Workers: 4, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b := &bot{pool: pool, queue: queue}
	srv := httptest.NewServer(server.New(server.Options{
		WebhookSecret: secret,
		Handlers:      handlers.All(intake.New(pool, queue)),
		Logger:        zerolog.Nop(),
		Observe: func(event, outcome string, took time.Duration) {
			b.mu.Lock()
			defer b.mu.Unlock()
			if took <= 0 {
				outcome += " (no duration)"
			}
			b.observed = append(b.observed, event+" "+outcome)
		},
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

func sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

type delivery struct {
	event, id string
	body      []byte
	signature string // "" = unsigned
}

func (b *bot) deliver(t *testing.T, d delivery) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url+server.WebhookPath, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", d.event)
	req.Header.Set("X-GitHub-Delivery", d.id)
	if d.signature != "" {
		req.Header.Set("X-Hub-Signature-256", d.signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func signed(event, id string, body []byte) delivery {
	return delivery{event: event, id: id, body: body, signature: sign(body)}
}

// stored is what the database holds for a delivery.
type stored struct {
	kind      string
	repo      string
	pr        int
	intent    map[string]any
	jobKind   string
	jobCount  int
	rowsTotal int
}

func (b *bot) stored(t *testing.T, id string) stored {
	t.Helper()
	ctx := context.Background()
	var s stored
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries`).Scan(&s.rowsTotal); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	var jobID *int64
	err := b.pool.QueryRow(ctx, `SELECT intent_kind, repo, pr_number, intent, job_id FROM deliveries WHERE delivery_id = $1`, id).
		Scan(&s.kind, &s.repo, &s.pr, &raw, &jobID)
	if err != nil {
		return s
	}
	if err := json.Unmarshal(raw, &s.intent); err != nil {
		t.Fatal(err)
	}
	if jobID != nil {
		_ = b.pool.QueryRow(ctx, `SELECT kind FROM river_job WHERE id = $1`, *jobID).Scan(&s.jobKind)
	}
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&s.jobCount); err != nil {
		t.Fatal(err)
	}
	return s
}

func readFixture(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "github-webhooks", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEveryFixture delivers every real payload we hold, signed, over HTTP,
// through the real handlers and database, and checks what was stored.
func TestEveryFixture(t *testing.T) {
	const noInst = "no installation"
	// Each fixture file maps to an intent kind, or to a reason for ignoring it.
	want := map[string]struct{ kind, ignored string }{
		"check_run/completed.1.payload.json":                                    {ignored: noInst},
		"check_run/completed.payload.json":                                      {ignored: noInst},
		"check_run/completed.with-organization.payload.json":                    {ignored: noInst},
		"check_run/created.payload.json":                                        {ignored: noInst},
		"check_run/created.with-organization.payload.json":                      {ignored: noInst},
		"check_run/requested_action.payload.json":                               {kind: "check_run_action"},
		"check_run/rerequested.payload.json":                                    {kind: "check_run_action"},
		"check_run/rerequested.with-organization.payload.json":                  {kind: "check_run_action"},
		"check_suite/completed.1.payload.json":                                  {ignored: noInst},
		"check_suite/completed.payload.json":                                    {ignored: noInst},
		"check_suite/completed.with-organization.payload.json":                  {ignored: noInst},
		"check_suite/requested.payload.json":                                    {kind: "check_suite_requested"},
		"check_suite/requested.payload.with-email-with-special-characters.json": {kind: "check_suite_requested"},
		"check_suite/requested.with-organization.payload.json":                  {kind: "check_suite_requested"},
		"check_suite/rerequested.payload.json":                                  {kind: "check_suite_requested"},
		"check_suite/rerequested.with-organization.payload.json":                {kind: "check_suite_requested"},
		"installation/created.payload.json":                                     {kind: "installation_changed"},
		"installation/created.with-requester.payload.json":                      {kind: "installation_changed"},
		"installation/deleted.payload.json":                                     {kind: "installation_changed"},
		"installation/new_permissions_accepted.payload.json":                    {kind: "installation_changed"},
		"installation/suspend.payload.json":                                     {kind: "installation_changed"},
		"installation/unsuspend.payload.json":                                   {kind: "installation_changed"},
		"installation_repositories/added.payload.json":                          {kind: "installation_changed"},
		"installation_repositories/removed.payload.json":                        {kind: "installation_changed"},
		"issue_comment/created.1.payload.json":                                  {ignored: noInst},
		"issue_comment/created.on-pull-request.go-playground-webhooks.json":     {ignored: noInst},
		"issue_comment/created.payload.json":                                    {ignored: noInst},
		"issue_comment/created.with-installation.payload.json":                  {ignored: "not on a pull request"},
		"issue_comment/created.with-organization.payload.json":                  {ignored: noInst},
		"issue_comment/deleted.payload.json":                                    {ignored: noInst},
		"issue_comment/deleted.with-organization.payload.json":                  {ignored: noInst},
		"issue_comment/edited.payload.json":                                     {ignored: noInst},
		"issue_comment/edited.with-organization.payload.json":                   {ignored: noInst},
		"pull_request/closed.payload.json":                                      {kind: "preview_closed"},
		"pull_request/closed.with-organization.payload.json":                    {kind: "preview_closed"},
		"pull_request/opened.payload.json":                                      {kind: "preview_requested"},
		"pull_request/opened.with-null-body.json":                               {kind: "preview_requested"},
		"pull_request/opened.with-organization.payload.json":                    {kind: "preview_requested"},
		"pull_request/reopened.payload.json":                                    {kind: "preview_requested"},
		"pull_request/reopened.with-organization.payload.json":                  {kind: "preview_requested"},
		"pull_request/synchronize.payload.json":                                 {kind: "preview_requested"},
		"push/1.payload.json":                                                   {ignored: noInst},
		"push/payload.json":                                                     {ignored: noInst},
		"push/with-installation.payload.json":                                   {ignored: "only branch pushes"},
		"push/with-new-branch.payload.json":                                     {kind: "production_push"},
		"push/with-no-username-committer.payload.json":                          {kind: "production_push"},
		"push/with-organization.payload.json":                                   {ignored: noInst},
	}

	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "github-webhooks", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures found: %v", err)
	}
	if len(files) != len(want) {
		t.Errorf("%d fixture files but %d expectations: every fixture needs a row", len(files), len(want))
	}
	b := newBot(t)
	for i, path := range files {
		rel := filepath.ToSlash(strings.TrimPrefix(path, filepath.Join("..", "..", "testdata", "github-webhooks")+string(filepath.Separator)))
		t.Run(rel, func(t *testing.T) {
			exp, ok := want[rel]
			if !ok {
				t.Fatalf("no expectation for fixture %s", rel)
			}
			body := readFixture(t, rel)
			event := strings.Split(rel, "/")[0]
			id := fmt.Sprintf("fixture-%d", i)
			before := b.stored(t, id).rowsTotal

			status, resp := b.deliver(t, signed(event, id, body))
			got := b.stored(t, id)

			if exp.ignored != "" {
				if status != http.StatusAccepted || !strings.Contains(resp, exp.ignored) {
					t.Errorf("want 202 ignoring it (%q), got %d %s", exp.ignored, status, resp)
				}
				if got.rowsTotal != before {
					t.Errorf("an ignored delivery stored a row")
				}
				return
			}
			if status != http.StatusOK {
				t.Fatalf("want 200, got %d %s", status, resp)
			}
			if got.kind != exp.kind || got.jobKind != exp.kind {
				t.Fatalf("stored intent %q with job %q, want %q", got.kind, got.jobKind, exp.kind)
			}
			checkIntentMatchesPayload(t, body, got)
		})
	}
}

// checkIntentMatchesPayload compares the identifying fields of a stored
// intent with the payload they came from.
func checkIntentMatchesPayload(t *testing.T, body []byte, got stored) {
	t.Helper()
	var p struct {
		Installation struct{ ID int64 } `json:"installation"`
		Repository   *struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
		Number      int `json:"number"`
		PullRequest *struct {
			Head struct{ SHA string } `json:"head"`
		} `json:"pull_request"`
		After    string `json:"after"`
		CheckRun *struct {
			HeadSHA string `json:"head_sha"`
		} `json:"check_run"`
		CheckSuite *struct {
			HeadSHA string `json:"head_sha"`
		} `json:"check_suite"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	in := got.intent
	if inst := int64(in["installation_id"].(float64)); inst != p.Installation.ID {
		t.Errorf("installation %d, payload has %d", inst, p.Installation.ID)
	}
	if p.Repository != nil && got.repo != p.Repository.FullName {
		t.Errorf("repo %q, payload has %q", got.repo, p.Repository.FullName)
	}
	switch {
	case p.PullRequest != nil:
		pr := in["pr"].(map[string]any)
		if got.pr != p.Number || int(pr["number"].(float64)) != p.Number {
			t.Errorf("PR %d, payload has %d", got.pr, p.Number)
		}
		if pr["head_sha"] != p.PullRequest.Head.SHA {
			t.Errorf("head %v, payload has %s", pr["head_sha"], p.PullRequest.Head.SHA)
		}
	case p.CheckRun != nil:
		if in["head_sha"] != p.CheckRun.HeadSHA {
			t.Errorf("head %v, payload has %s", in["head_sha"], p.CheckRun.HeadSHA)
		}
	case p.CheckSuite != nil:
		if in["head_sha"] != p.CheckSuite.HeadSHA {
			t.Errorf("head %v, payload has %s", in["head_sha"], p.CheckSuite.HeadSHA)
		}
	case p.After != "":
		if in["after"] != p.After {
			t.Errorf("after %v, payload has %s", in["after"], p.After)
		}
	}
}

// edit returns a copy of a fixture with fields changed, for the cases the
// fixtures lack (a fork, a draft, a bot's comment). Paths are dotted keys.
func edit(t *testing.T, body []byte, changes map[string]any) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for path, v := range changes {
		keys := strings.Split(path, ".")
		m := doc
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = v
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVariants covers what the fixtures do not: the handlers' decisions on
// forks, drafts, bots, branches and comments.
func TestVariants(t *testing.T) {
	inst := map[string]any{"id": 42}
	comment := readFixture(t, "issue_comment/created.on-pull-request.go-playground-webhooks.json")
	pr := readFixture(t, "pull_request/synchronize.payload.json")
	push := readFixture(t, "push/with-new-branch.payload.json")

	cases := []struct {
		name    string
		event   string
		body    []byte
		kind    string         // "" = ignored
		ignored string         // reason substring when ignored
		fields  map[string]any // dotted paths into the stored intent
	}{
		{"comment command on a PR", "issue_comment", edit(t, comment, map[string]any{"installation": inst}),
			"comment_command", "", map[string]any{"pr": 3.0, "body": "/build", "author": "chhsia0"}},
		{"comment by a bot", "issue_comment", edit(t, comment, map[string]any{"installation": inst, "comment.user.type": "Bot", "comment.user.login": "deploybot[bot]"}),
			"", "by bot", nil},
		{"comment without a command", "issue_comment", edit(t, comment, map[string]any{"installation": inst, "comment.body": "LGTM, but see /docs"}),
			"", "no line starting with '/'", nil},
		{"command on a later line", "issue_comment", edit(t, comment, map[string]any{"installation": inst, "comment.id": 2, "comment.body": "thanks!\n  /redeploy --reset-db"}),
			"comment_command", "", map[string]any{"body": "thanks!\n  /redeploy --reset-db"}},
		{"edited comment", "issue_comment", edit(t, comment, map[string]any{"installation": inst, "action": "edited"}),
			"", "only new comments", nil},
		{"PR from a fork", "pull_request", edit(t, pr, map[string]any{"pull_request.head.repo.full_name": "mallory/Hello-World"}),
			"preview_requested", "", map[string]any{"pr.fork": true, "pr.head_repo": "mallory/Hello-World"}},
		{"PR from a deleted fork", "pull_request", edit(t, pr, map[string]any{"pull_request.head.repo": nil}),
			"preview_requested", "", map[string]any{"pr.fork": true}},
		{"PR from the same repo", "pull_request", pr,
			"preview_requested", "", map[string]any{"pr.fork": false, "pr.head_ref": "changes", "pr.base_ref": "master"}},
		{"ready for review", "pull_request", edit(t, pr, map[string]any{"action": "ready_for_review"}),
			"preview_requested", "", nil},
		{"converted to draft", "pull_request", edit(t, pr, map[string]any{"action": "converted_to_draft", "pull_request.draft": true}),
			"preview_drafted", "", map[string]any{"pr.draft": true}},
		{"merged", "pull_request", edit(t, pr, map[string]any{"action": "closed", "pull_request.merged": true}),
			"preview_closed", "", map[string]any{"merged": true}},
		{"labeled", "pull_request", edit(t, pr, map[string]any{"action": "labeled"}),
			"", "labeled changes nothing", nil},
		{"push to a feature branch", "push", edit(t, push, map[string]any{"ref": "refs/heads/feature/x"}),
			"test_requested", "", map[string]any{"branch": "feature/x"}},
		{"branch deleted", "push", edit(t, push, map[string]any{"ref": "refs/heads/feature/x", "deleted": true, "after": "0000000000000000000000000000000000000000"}),
			"branch_deleted", "", map[string]any{"branch": "feature/x"}},
	}
	b := newBot(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("variant-%d", i)
			status, resp := b.deliver(t, signed(c.event, id, c.body))
			got := b.stored(t, id)
			if c.kind == "" {
				if status != http.StatusAccepted || !strings.Contains(resp, c.ignored) || got.kind != "" {
					t.Fatalf("want ignored (%q), got %d %s, stored %q", c.ignored, status, resp, got.kind)
				}
				return
			}
			if status != http.StatusOK || got.kind != c.kind {
				t.Fatalf("want %s stored, got %d %s, stored %q", c.kind, status, resp, got.kind)
			}
			for path, want := range c.fields {
				if v := lookup(got.intent, path); v != want {
					t.Errorf("%s = %v, want %v", path, v, want)
				}
			}
		})
	}
}

func lookup(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// TestRejected checks that what must not be stored is not, and that GitHub
// gets the status that explains why.
func TestRejected(t *testing.T) {
	body := readFixture(t, "pull_request/opened.payload.json")
	malformed := []byte(`{"action": "opened", "pull_request": {`)
	huge := append(bytes.Repeat([]byte(" "), server.MaxBodyBytes), body...)

	cases := []struct {
		name    string
		d       delivery
		status  int
		outcome string // what the metrics count it as
	}{
		{"unsigned", delivery{event: "pull_request", id: "r1", body: body}, http.StatusUnauthorized, "unauthorized"},
		{"wrong signature", delivery{event: "pull_request", id: "r2", body: body, signature: sign([]byte("something else"))}, http.StatusUnauthorized, "unauthorized"},
		{"sha1 signature only", delivery{event: "pull_request", id: "r3", body: body, signature: "sha1=" + strings.Repeat("0", 40)}, http.StatusUnauthorized, "unauthorized"},
		{"signed with another secret", delivery{event: "pull_request", id: "r4", body: body, signature: "sha256=" + hex.EncodeToString(hmac.New(sha256.New, []byte("nope")).Sum(nil))}, http.StatusUnauthorized, "unauthorized"},
		{"malformed JSON", signed("pull_request", "r5", malformed), http.StatusBadRequest, "bad_request"},
		{"no delivery id", signed("pull_request", "", body), http.StatusBadRequest, "bad_request"},
		{"no event type", signed("", "r6", body), http.StatusBadRequest, "bad_request"},
		{"over 25 MiB", signed("pull_request", "r7", huge), http.StatusRequestEntityTooLarge, "too_large"},
		{"unhandled event", signed("star", "r8", []byte(`{"action":"created"}`)), http.StatusAccepted, "ignored"},
	}
	b := newBot(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, resp := b.deliver(t, c.d)
			if status != c.status {
				t.Errorf("status %d (%s), want %d", status, strings.TrimSpace(resp), c.status)
			}
			if got, want := b.lastOutcome(), c.d.event+" "+c.outcome; got != want {
				t.Errorf("observed %q, want %q", got, want)
			}
			if s := b.stored(t, c.d.id); s.rowsTotal != 0 || s.jobCount != 0 {
				t.Errorf("stored %d deliveries and %d jobs, want none", s.rowsTotal, s.jobCount)
			}
		})
	}
}

// TestRedelivery checks that a redelivered id (GitHub's "Redeliver" button,
// or a retry after a timeout) is acknowledged and has no second effect, even
// when the copies arrive at the same moment.
func TestRedelivery(t *testing.T) {
	b := newBot(t)
	d := signed("pull_request", "dup-1", readFixture(t, "pull_request/synchronize.payload.json"))

	status, first := b.deliver(t, d)
	if status != http.StatusOK || !strings.Contains(first, `"duplicate":false`) {
		t.Fatalf("first delivery: %d %s", status, first)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			status, resp := b.deliver(t, d)
			if status != http.StatusOK || !strings.Contains(resp, `"duplicate":true`) {
				t.Errorf("redelivery: %d %s", status, resp)
			}
		})
	}
	wg.Wait()
	if s := b.stored(t, "dup-1"); s.rowsTotal != 1 || s.jobCount != 1 {
		t.Fatalf("after redeliveries: %d deliveries, %d jobs; want 1 and 1", s.rowsTotal, s.jobCount)
	}
	// The metrics tell a stored delivery from its redeliveries, although
	// both are answered 200.
	if got := b.outcomes(); got["pull_request stored"] != 1 || got["pull_request duplicate"] != 8 || len(got) != 2 {
		t.Errorf("observed %v, want 1 stored and 8 duplicates", got)
	}

	// Simultaneous first deliveries of one id also queue one job.
	d2 := signed("pull_request", "dup-2", d.body)
	var fresh int
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			status, resp := b.deliver(t, d2)
			if status != http.StatusOK {
				t.Errorf("concurrent delivery: %d %s", status, resp)
			}
			if strings.Contains(resp, `"duplicate":false`) {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if s := b.stored(t, "dup-2"); fresh != 1 || s.jobCount != 2 {
		t.Fatalf("concurrent first deliveries: %d accepted as new, %d jobs in all; want 1 and 2", fresh, s.jobCount)
	}
}

// TestSameCommentUnderTwoDeliveryIDs: one comment delivered under two
// delivery ids (two webhooks pointing at the bot, a replayed payload) is one
// command, not two; another comment is not mistaken for it.
func TestSameCommentUnderTwoDeliveryIDs(t *testing.T) {
	b := newBot(t)
	inst := map[string]any{"id": 7}
	fixture := readFixture(t, "issue_comment/created.on-pull-request.go-playground-webhooks.json")
	body := edit(t, fixture, map[string]any{"installation": inst, "comment.body": "/redeploy"})
	if status, resp := b.deliver(t, signed("issue_comment", "c-1", body)); status != http.StatusOK || !strings.Contains(resp, `"duplicate":false`) {
		t.Fatalf("first delivery: %d %s", status, resp)
	}
	if status, resp := b.deliver(t, signed("issue_comment", "c-2", body)); status != http.StatusOK || !strings.Contains(resp, `"duplicate":true`) {
		t.Fatalf("the same comment under another delivery id: %d %s, want a duplicate", status, resp)
	}
	other := edit(t, fixture, map[string]any{"installation": inst, "comment.body": "/redeploy", "comment.id": 99999999})
	if status, resp := b.deliver(t, signed("issue_comment", "c-3", other)); status != http.StatusOK || !strings.Contains(resp, `"duplicate":false`) {
		t.Fatalf("another comment: %d %s", status, resp)
	}
	if s := b.stored(t, "c-3"); s.rowsTotal != 2 || s.jobCount != 2 {
		t.Fatalf("%d deliveries and %d jobs stored, want 2 and 2", s.rowsTotal, s.jobCount)
	}
}

// TestQueueRecordsIntents runs the job queue and checks that each stored
// delivery's intent is worked exactly once.
func TestQueueRecordsIntents(t *testing.T) {
	b := newBot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	completed, unsubscribe := b.queue.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer unsubscribe()
	if err := b.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.queue.Stop(context.Background()) })

	fixtures := []string{"pull_request/opened.payload.json", "push/with-new-branch.payload.json", "check_suite/requested.payload.json"}
	for i, f := range fixtures {
		event := strings.Split(f, "/")[0]
		d := signed(event, fmt.Sprintf("q-%d", i), readFixture(t, f))
		if status, resp := b.deliver(t, d); status != http.StatusOK {
			t.Fatalf("%s: %d %s", f, status, resp)
		}
		b.deliver(t, d) // a redelivery must not be worked twice
	}
	for range fixtures {
		select {
		case ev := <-completed:
			if ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("job %s failed: %v", ev.Job.Kind, ev.Job.Errors)
			}
		case <-ctx.Done():
			t.Fatal("timed out waiting for jobs")
		}
	}
	rows, err := b.pool.Query(ctx, `SELECT delivery_id, kind FROM intents ORDER BY delivery_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id, kind string
		if err := rows.Scan(&id, &kind); err != nil {
			t.Fatal(err)
		}
		got = append(got, id+"="+kind)
	}
	want := "q-0=preview_requested q-1=production_push q-2=check_suite_requested"
	if strings.Join(got, " ") != want {
		t.Fatalf("recorded intents %v, want %s", got, want)
	}
}

func TestHealth(t *testing.T) {
	notReady := fmt.Errorf("database schema is not current")
	for _, c := range []struct {
		path  string
		ready error
		want  int
	}{
		{"/healthz", notReady, http.StatusOK},
		{"/readyz", nil, http.StatusOK},
		{"/readyz", notReady, http.StatusServiceUnavailable},
	} {
		srv := httptest.NewServer(server.New(server.Options{
			WebhookSecret: secret,
			Ready:         func(context.Context) error { return c.ready },
			Logger:        zerolog.Nop(),
		}))
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s with ready=%v: %d, want %d", c.path, c.ready, resp.StatusCode, c.want)
		}
	}
}

// TestFailedQueueInsertStoresNothing shows the delivery and its job are one
// transaction: when the job cannot be queued, the delivery is not kept either,
// and GitHub is told to try again (500), so the redelivery is not mistaken
// for a duplicate.
func TestFailedQueueInsertStoresNothing(t *testing.T) {
	b := newBot(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `ALTER TABLE river_job RENAME TO river_job_away`); err != nil {
		t.Fatal(err)
	}
	d := signed("pull_request", "atomic-1", readFixture(t, "pull_request/opened.payload.json"))
	if status, resp := b.deliver(t, d); status != http.StatusInternalServerError || !strings.Contains(resp, "safe to redeliver") {
		t.Fatalf("got %d %s, want 500", status, resp)
	}
	if got := b.lastOutcome(); !strings.HasSuffix(got, " error") {
		t.Errorf("observed %q, want an error", got)
	}
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d deliveries stored (err %v), want 0", n, err)
	}
	if _, err := b.pool.Exec(ctx, `ALTER TABLE river_job_away RENAME TO river_job`); err != nil {
		t.Fatal(err)
	}
	if status, resp := b.deliver(t, d); status != http.StatusOK || !strings.Contains(resp, `"duplicate":false`) {
		t.Fatalf("redelivery after recovery: %d %s", status, resp)
	}
}

// TestUnhandledEventSaysWhy: an event the bot has no use for is accepted
// with a body that says so, for whoever reads GitHub's delivery log.
func TestUnhandledEventSaysWhy(t *testing.T) {
	b := newBot(t)
	status, body := b.deliver(t, signed("star", "unhandled-1", []byte(`{"action":"created"}`)))
	if status != http.StatusAccepted || !strings.Contains(body, `"ignored":"deploybot does not act on star events"`) {
		t.Errorf("star event: %d %q, want 202 saying it is ignored", status, body)
	}
}
