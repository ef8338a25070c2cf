package github

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/retry"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

func TestInstallationTokenFlow(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	pr, err := e.rep.PullRequest(ctx, 1)
	must(t, err)
	if pr.HeadSHA != e.headSHA || pr.HeadRef != "feature" || pr.BaseRef != "main" || pr.State != "open" || pr.Fork || pr.HeadRepo != repo {
		t.Errorf("pull request %+v", pr)
	}
	if _, err := e.rep.CollaboratorRole(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if st := e.state(); st.Tokens.Issued != 1 {
		t.Errorf("%d installation tokens issued for two calls, want 1 (cached by the client)", st.Tokens.Issued)
	}

	// A key GitHub does not know for the App gets no token.
	wrong, err := rsaPEM()
	must(t, err)
	cfg := e.cfg
	cfg.PrivateKey = wrong
	other := NewReporter(e.installationClient(cfg), owner, name)
	_, err = other.PullRequest(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("with the wrong App key: %v, want a 401 from the token exchange", err)
	}
	if strings.Contains(fmt.Sprint(err), "PRIVATE KEY") {
		t.Error("error shows key material")
	}
}

func TestPullRequestLookups(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	must(t, e.sim.SetPermission(repo, "maria", "maintain"))
	must(t, e.sim.SetPermission(repo, "tim", "triage"))
	for user, want := range map[string]string{"acme": RoleAdmin, "maria": RoleMaintain, "tim": RoleTriage, "stranger": RoleRead} {
		role, err := e.rep.CollaboratorRole(ctx, user)
		if err != nil || role != want {
			t.Errorf("role of %s = %q, %v; want %q", user, role, err, want)
		}
	}

	_, err := e.sim.Commit(repo, "contrib", map[string]string{"web/index.js": "evil()"}, "contrib")
	must(t, err)
	n, err := e.sim.OpenPR(repo, "contrib", "main", "From a fork", true, true)
	must(t, err)
	pr, err := e.rep.PullRequest(ctx, n)
	must(t, err)
	if !pr.Fork || !pr.Draft || pr.HeadRepo != ghsim.ForkOwner+"/"+name || pr.Author != ghsim.ForkOwner {
		t.Errorf("fork pull request %+v", pr)
	}
	_, err = e.rep.PullRequest(ctx, 99)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "#99") || !strings.Contains(err.Error(), repo) {
		t.Errorf("missing pull request: %v", err)
	}

	cfg, err := e.rep.File(ctx, ".github/deploybot.yml", e.headSHA)
	if err != nil || string(cfg) != "workers: [web]\n" {
		t.Errorf("config file = %q, %v", cfg, err)
	}
	if _, err := e.rep.File(ctx, ".github/missing.yml", "main"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}

	rc, err := e.rep.Tarball(ctx, e.headSHA)
	must(t, err)
	defer rc.Close()
	gz, err := gzip.NewReader(rc)
	must(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
	want := fmt.Sprintf("acme-app-%s/web/index.js", e.headSHA[:7])
	if !strings.Contains(strings.Join(names, " "), want) {
		t.Errorf("tarball entries %v lack %s", names, want)
	}
}

func TestConditionalRequestsAnswer304(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	first, err := e.rep.PullRequest(ctx, 1)
	must(t, err)
	second, err := e.rep.PullRequest(ctx, 1)
	must(t, err)
	if first != second {
		t.Errorf("cached answer differs: %+v vs %+v", first, second)
	}
	got := e.state().Responses[routeGetPull]
	if got[200] != 1 || got[304] != 1 {
		t.Errorf("GET pull answers %v, want one 200 then one 304", got)
	}
	// Never stale: a push shows up on the next call.
	newHead, err := e.sim.PushPR(repo, 1, map[string]string{"web/index.js": "v2"}, "v2")
	must(t, err)
	third, err := e.rep.PullRequest(ctx, 1)
	must(t, err)
	if third.HeadSHA != newHead {
		t.Errorf("head after push %s, want %s", third.HeadSHA, newHead)
	}
}

func TestStatusCommentIsCreatedOnceThenEdited(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	id, err := e.rep.UpsertStatusComment(ctx, 1, "Preview: building", 0)
	must(t, err)
	again, err := e.rep.UpsertStatusComment(ctx, 1, "Preview: building", 0)
	must(t, err)
	if again != id {
		t.Fatalf("second upsert returned comment %d, want %d", again, id)
	}
	if n, p := e.requests(routeCreateComment), e.requests(routeEditComment); n != 1 || p != 0 {
		t.Errorf("after two identical upserts: %d creates, %d edits; want 1, 0", n, p)
	}
	_, err = e.rep.UpsertStatusComment(ctx, 1, "Preview: ready ✅", id)
	must(t, err)
	if p, g := e.requests(routeEditComment), e.requests(routeGetComment); p != 1 || g != 0 {
		t.Errorf("an edit by the remembered ID: %d edits and %d reads, want 1 and 0", p, g)
	}
	if l := e.requests(routeListComments); l != 3 {
		t.Errorf("%d comment listings, want 3: search and check on create, search on the second call; the remembered ID skips the search", l)
	}
	comments := e.state().Comments
	if len(comments) != 1 || !strings.HasPrefix(comments[0].Body, StatusMarker(1)) || !strings.Contains(comments[0].Body, "ready ✅") || comments[0].Author != e.sim.BotLogin() {
		t.Errorf("comments %+v", comments)
	}

	// A remembered ID of a deleted comment falls back to the search.
	req, err := e.client.NewRequest("DELETE", fmt.Sprintf("repos/%s/issues/comments/%d", repo, id), nil)
	must(t, err)
	_, err = e.client.Do(ctx, req, nil)
	must(t, err)
	newID, err := e.rep.UpsertStatusComment(ctx, 1, "Preview: rebuilt", id)
	must(t, err)
	if newID == id || len(e.state().Comments) != 1 {
		t.Errorf("after deletion: id %d (old %d), %d comments", newID, id, len(e.state().Comments))
	}
}

// raceTransport lets another replica create its status comment just
// before this one's create reaches GitHub.
type raceTransport struct {
	sim  *ghsim.Server
	once sync.Once
}

func (rt *raceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issues/1/comments") {
		rt.once.Do(func() {
			_, _ = rt.sim.AddComment(repo, 1, rt.sim.BotLogin(), StatusMarker(1)+"\nfrom the other replica")
		})
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestStatusCommentCreateRace(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	cfg := e.cfg
	cfg.Transport = &raceTransport{sim: e.sim}
	rep := NewReporter(e.installationClient(cfg), owner, name, WithBotLogin(e.sim.BotLogin()))
	id, err := rep.UpsertStatusComment(t.Context(), 1, "mine", 0)
	must(t, err)
	comments := e.state().Comments
	if len(comments) != 1 || comments[0].ID != id || comments[0].Body != StatusMarker(1)+"\nmine" {
		t.Errorf("after a create race: %+v (returned %d), want the older comment, saying mine", comments, id)
	}
}

func TestStatusCommentDuplicatesAcrossPages(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	marker := StatusMarker(1)
	add := func(user, body string) int64 {
		id, err := e.sim.AddComment(repo, 1, user, body)
		must(t, err)
		return id
	}
	// 250 comments: three status comments of the bot far apart (pages 1,
	// 2 and 3 of 100), one person quoting the marker, one for another PR.
	var oldest, dup1, dup2, quoted int64
	for i := range 250 {
		switch i {
		case 10:
			oldest = add(e.sim.BotLogin(), marker+"\nold status")
		case 120:
			dup1 = add(e.sim.BotLogin(), marker+"\nrace")
		case 130:
			quoted = add("alice", "why does it say "+marker+"?")
		case 240:
			dup2 = add(e.sim.BotLogin(), marker+"\nrace again")
		case 241:
			add(e.sim.BotLogin(), StatusMarker(2)+"\nanother PR's marker, quoted")
		default:
			add("alice", fmt.Sprintf("comment %d", i))
		}
	}
	id, err := e.rep.UpsertStatusComment(ctx, 1, "current status", 0)
	must(t, err)
	if id != oldest {
		t.Errorf("kept comment %d, want the oldest %d", id, oldest)
	}
	left := map[int64]string{}
	for _, c := range e.state().Comments {
		left[c.ID] = c.Body
	}
	if _, ok := left[dup1]; ok {
		t.Error("duplicate on page 2 not deleted")
	}
	if _, ok := left[dup2]; ok {
		t.Error("duplicate on page 3 not deleted")
	}
	if _, ok := left[quoted]; !ok {
		t.Error("a person's comment quoting the marker was deleted")
	}
	if left[oldest] != marker+"\ncurrent status" {
		t.Errorf("kept comment says %q", left[oldest])
	}
	if len(left) != 248 || e.requests(routeDeleteComment) != 2 || e.requests(routeCreateComment) != 0 {
		t.Errorf("%d comments left, %d deletes, %d creates", len(left), e.requests(routeDeleteComment), e.requests(routeCreateComment))
	}
	if l := e.requests(routeListComments); l != 3 {
		t.Errorf("%d list requests for 250 comments, want 3 pages of 100", l)
	}
}

func TestReactions(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	id, err := e.sim.AddComment(repo, 1, "maria", "/redeploy")
	must(t, err)
	must(t, e.rep.React(ctx, id, ReactionEyes))
	must(t, e.rep.React(ctx, id, ReactionEyes))
	must(t, e.rep.React(ctx, id, ReactionRocket))
	if err := e.rep.React(ctx, id, "thumbsup"); err == nil {
		t.Error("accepted an unknown reaction")
	}
	if err := e.rep.React(ctx, 424242, ReactionEyes); !errors.Is(err, ErrNotFound) {
		t.Errorf("reaction on a missing comment: %v", err)
	}
	var got []string
	for _, r := range e.state().Reactions {
		got = append(got, r.Content)
	}
	if strings.Join(got, ",") != "eyes,rocket" {
		t.Errorf("reactions %v", got)
	}
}

func TestCheckRunLifecycle(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	ref, err := e.rep.CreateCheckRun(ctx, CheckRun{
		Name: "deploybot/preview", HeadSHA: e.headSHA, Status: StatusInProgress,
		Output: &CheckOutput{Title: "Deploying", Summary: "Starting"},
		Actions: []CheckAction{{
			Label:       "Redeploy the preview now", // 24 characters
			Description: "Build and deploy this commit again, from scratch",
			Identifier:  "redeploy",
		}},
	})
	must(t, err)
	id := ref.ID
	if want := fmt.Sprintf("/acme/app/runs/%d", id); !strings.HasSuffix(ref.URL, want) {
		t.Errorf("check run URL %q, want GitHub's html_url ending in %s", ref.URL, want)
	}
	found, ok, err := e.rep.FindCheckRun(ctx, e.headSHA, "deploybot/preview")
	if err != nil || !ok || found != id {
		t.Errorf("FindCheckRun = %d, %v, %v; want %d", found, ok, err, id)
	}

	// 100 000 bytes of multi-byte text, and 120 annotations.
	text := "```\n" + strings.Repeat("ünïcödé log line ✅\n", 4000)
	var notes []Annotation
	for i := range 120 {
		notes = append(notes, Annotation{Path: "web/index.js", StartLine: i + 1, Level: "warning", Message: "slow"})
	}
	must(t, e.rep.UpdateCheckRun(ctx, id, CheckRun{
		Name:       "deploybot/preview",
		Conclusion: ConclusionFailure,
		Output:     &CheckOutput{Title: "Health check failed", Summary: "web: 502", Text: text, Annotations: notes},
	}))
	var cr ghsim.CheckRunState
	for _, c := range e.state().CheckRuns {
		if c.ID == id {
			cr = c
		}
	}
	if cr.Status != "completed" || cr.Conclusion != "failure" || cr.OutputTitle != "Health check failed" || cr.Name != "deploybot/preview" {
		t.Errorf("check run %+v", cr)
	}
	if cr.TextBytes > MaxOutputBytes || cr.TextBytes < MaxOutputBytes-1000 {
		t.Errorf("text of %d bytes stored, want just under %d", cr.TextBytes, MaxOutputBytes)
	}
	if cr.Annotations != 120 || e.requests(routeUpdateCheck) != 3 {
		t.Errorf("%d annotations in %d updates, want 120 in 3 (50 per call)", cr.Annotations, e.requests(routeUpdateCheck))
	}
	if cr.Actions != 1 {
		t.Errorf("%d actions", cr.Actions)
	}
	got, _, err := e.client.Checks.GetCheckRun(ctx, owner, name, id)
	must(t, err)
	out := got.GetOutput().GetText()
	if !utf8.ValidString(out) || !strings.Contains(out, "truncated") || !strings.HasSuffix(strings.TrimSpace(strings.Split(out, "\n\n… truncated")[0]), "```") {
		t.Errorf("stored text is not valid UTF-8 with a closed fence and a note: ...%q", out[max(len(out)-120, 0):])
	}

	// Limits GitHub would reject are caught before sending.
	before := e.requests("POST /repos/{owner}/{repo}/check-runs")
	_, err = e.rep.CreateCheckRun(ctx, CheckRun{Name: "x", HeadSHA: e.headSHA, Actions: []CheckAction{{Label: "a", Identifier: "an-identifier-too-long"}}})
	if err == nil {
		t.Error("accepted an identifier longer than 20 characters")
	}
	_, err = e.rep.CreateCheckRun(ctx, CheckRun{Name: "x", HeadSHA: e.headSHA, Actions: make([]CheckAction, 4)})
	if err == nil {
		t.Error("accepted four actions")
	}
	if e.requests("POST /repos/{owner}/{repo}/check-runs") != before {
		t.Error("invalid check runs were sent")
	}
}

func TestDeployments(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	// The bot's own check run is still running: required_contexts must
	// be empty or GitHub refuses (409).
	_, err := e.rep.CreateCheckRun(ctx, CheckRun{Name: "deploybot/preview", HeadSHA: e.headSHA, Status: StatusInProgress})
	must(t, err)
	deploy := func(pr int, sha string) int64 {
		id, err := e.rep.CreateDeployment(ctx, Deployment{Ref: sha, Environment: "preview", Description: "Preview", Transient: true, PR: pr})
		must(t, err)
		must(t, e.rep.SetDeploymentStatus(ctx, id, DeploymentStatus{State: DeployInProgress, LogURL: "https://logs.example/1"}))
		must(t, e.rep.SetDeploymentStatus(ctx, id, DeploymentStatus{
			State: DeploySuccess, EnvironmentURL: fmt.Sprintf("https://codex-preview-%d.revelations.studio", pr),
			Description: strings.Repeat("long description ", 20),
		}))
		return id
	}
	first := deploy(1, e.headSHA)
	// Another pull request's preview in the same environment.
	_, err = e.sim.Commit(repo, "other", map[string]string{"x": "y"}, "other")
	must(t, err)
	n, err := e.sim.OpenPR(repo, "other", "main", "Other", false, false)
	must(t, err)
	otherPR := deploy(n, "other")
	second := deploy(1, e.headSHA)

	changed, err := e.rep.DeactivatePullRequestDeployments(ctx, "preview", 1, second, 0)
	must(t, err)
	if changed != 1 {
		t.Errorf("deactivated %d, want 1", changed)
	}
	changed, err = e.rep.DeactivatePullRequestDeployments(ctx, "preview", 1, second, 0)
	if err != nil || changed != 0 {
		t.Errorf("second deactivation changed %d, %v; want 0", changed, err)
	}
	last := map[int64]ghsim.DeploymentStatusState{}
	for _, d := range e.state().Deployments {
		if d.Environment != "preview" || !d.Transient || d.Production {
			t.Errorf("deployment %+v", d)
		}
		last[d.ID] = d.Statuses[len(d.Statuses)-1]
	}
	if last[first].State != "inactive" || last[second].State != "success" || last[otherPR].State != "success" {
		t.Errorf("states: first %s, second %s, other PR %s", last[first].State, last[second].State, last[otherPR].State)
	}
	if s := last[second]; s.EnvironmentURL != "https://codex-preview-1.revelations.studio" || utf8.RuneCountInString(s.Description) > 140 {
		t.Errorf("status %+v", s)
	}
}

// A repository's preview environment collects every pull request's
// deployments for ever. Superseding a preview must not read that history:
// it deactivates the recorded previous deployment directly and looks only
// at what is newer (deployments of runs that died before recording theirs).
func TestDeactivationReadsOnlyRecentHistory(t *testing.T) {
	// Setting up 900 deployments and statuses is no bot at work: neither
	// GitHub's content-creation limit nor the bot's pacing of it apply.
	e := newEnv(t, ghsim.Options{ContentPerMinute: 1 << 20, ContentPerHour: 1 << 20})
	e.cfg.RateLimits.Writes.PerMinute = -1
	e.rep = NewReporter(e.installationClient(e.cfg), owner, name, WithBotLogin(e.sim.BotLogin()))
	ctx := t.Context()
	deploy := func(pr int) int64 {
		id, err := e.rep.CreateDeployment(ctx, Deployment{Ref: e.headSHA, Environment: "preview", Transient: true, PR: pr})
		must(t, err)
		must(t, e.rep.SetDeploymentStatus(ctx, id, DeploymentStatus{State: DeploySuccess}))
		return id
	}
	const list = "GET /repos/{owner}/{repo}/deployments"
	recorded := deploy(1)
	for i := range 450 { // other pull requests' history: five pages
		deploy(100 + i)
	}
	orphan := deploy(1) // its run died before recording it
	current := deploy(1)

	before := e.requests(list)
	changed, err := e.rep.DeactivatePullRequestDeployments(ctx, "preview", 1, current, recorded)
	must(t, err)
	if changed != 2 {
		t.Errorf("changed %d, want 2 (the recorded one and the orphan)", changed)
	}
	if n := e.requests(list) - before; n > maxDeactivationPages {
		t.Errorf("%d listing requests for one superseded preview, want at most %d", n, maxDeactivationPages)
	}
	state := map[int64]string{}
	for _, d := range e.state().Deployments {
		state[d.ID] = d.Statuses[len(d.Statuses)-1].State
	}
	if state[recorded] != DeployInactive || state[orphan] != DeployInactive || state[current] != DeploySuccess {
		t.Errorf("recorded %s, orphan %s, current %s; want inactive, inactive, success", state[recorded], state[orphan], state[current])
	}

	// The next push: the recorded deployment is the newest, one page is
	// enough, and nothing but it is written.
	next := deploy(1)
	before, writes := e.requests(list), e.requests("POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses")
	changed, err = e.rep.DeactivatePullRequestDeployments(ctx, "preview", 1, next, current)
	must(t, err)
	if n := e.requests(list) - before; changed != 1 || n != 1 {
		t.Errorf("changed %d with %d listing requests, want 1 with 1", changed, n)
	}
	if w := e.requests("POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses") - writes; w != 1 {
		t.Errorf("%d status writes, want 1", w)
	}
}

func TestSecondaryRateLimitIsWaitedOut(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	e.sim.Faults().Set(fault.Rule{Method: "POST", Path: "/repos/acme/app/issues/1/comments", Times: 1, Status: http.StatusForbidden, RetryAfter: 3 * time.Second})
	_, err := e.rep.UpsertStatusComment(t.Context(), 1, "status", 0)
	must(t, err)
	if sleeps := e.clock.Sleeps(); len(sleeps) != 1 || sleeps[0] != 3*time.Second {
		t.Errorf("waited %v, want one wait of Retry-After (3s)", sleeps)
	}
	if e.sim.Faults().Injected() != 1 || len(e.state().Comments) != 1 {
		t.Errorf("injected %d, comments %d", e.sim.Faults().Injected(), len(e.state().Comments))
	}

	// A wait the context cannot afford is not started: GitHub's answer
	// comes back at once.
	e.sim.Faults().Set(fault.Rule{Method: "GET", Path: "/repos/acme/app/pulls/1", Times: 1, Status: http.StatusForbidden, RetryAfter: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = e.rep.PullRequest(ctx, 1)
	var abuse *gh.AbuseRateLimitError
	if !errors.As(err, &abuse) {
		t.Errorf("PullRequest under a 1h limit with a 1m deadline: %v, want go-github's AbuseRateLimitError", err)
	}
	if len(e.clock.Sleeps()) != 1 {
		t.Errorf("slept %v", e.clock.Sleeps())
	}
}

func TestPrimaryRateLimitIsWaitedOut(t *testing.T) {
	// A short window keeps the installation token (1h) alive across the
	// wait.
	e := newEnv(t, ghsim.Options{RateLimit: 3, RateLimitWindow: 10 * time.Minute})
	ctx := t.Context()
	// Three requests exhaust the window's budget; the fourth waits for
	// the reset instead of failing.
	for i := range 4 {
		if _, err := e.rep.CollaboratorRole(ctx, fmt.Sprintf("user%d", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	sleeps := e.clock.Sleeps()
	if len(sleeps) != 1 || sleeps[0] < 9*time.Minute || sleeps[0] > 11*time.Minute {
		t.Errorf("waits %v, want one of about the 10 minutes left", sleeps)
	}
	if got := e.state().Responses["GET /repos/{owner}/{repo}/collaborators/{username}/permission"]; got[403] != 0 {
		t.Errorf("answers %v: the exhausted limit was hit instead of waited for", got)
	}
}

func TestRequestTheDescriptionRejects(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	req, err := e.client.NewRequest("POST", "repos/acme/app/check-runs", map[string]any{"name": "deploybot/preview"})
	must(t, err)
	_, err = e.client.Do(t.Context(), req, nil)
	var ge *gh.ErrorResponse
	if !errors.As(err, &ge) || ge.Response.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(ge.Message, "head_sha") {
		t.Errorf("check run without head_sha: %v, want 422 naming head_sha", err)
	}
}

// TestTransientFailuresAreRetried: a 502 on a read is retried; a creating
// POST that may have been acted on is not repeated.
func TestTransientFailuresAreRetried(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	e.cfg.Retry = retry.Policy{Sleep: e.clock.Sleep}
	e.client = e.installationClient(e.cfg)
	e.rep = NewReporter(e.client, owner, name, WithBotLogin(e.sim.BotLogin()))
	ctx := context.Background()

	e.sim.Faults().Set(fault.Rule{Method: "GET", Path: "/repos/acme/app/pulls/1", Times: 2, Status: http.StatusBadGateway})
	pr, err := e.rep.PullRequest(ctx, 1)
	if err != nil || pr.HeadSHA != e.headSHA {
		t.Fatalf("read after two 502s: %+v, %v", pr, err)
	}

	e.sim.Faults().Set(fault.Rule{Method: "POST", Path: "/repos/acme/app/check-runs", Times: 1, Status: http.StatusBadGateway, AfterServe: true})
	_, err = e.rep.CreateCheckRun(ctx, CheckRun{Name: "deploybot/preview", HeadSHA: e.headSHA})
	if err == nil {
		t.Fatal("a 502 on create was hidden")
	}
	if n := len(e.state().CheckRuns); n != 1 {
		t.Fatalf("%d check runs after one create answered 502, want exactly 1 (not repeated)", n)
	}
	if !retry.Transient(err) {
		t.Errorf("a 502 on create is not reported as transient: %v", err)
	}
	// With an external id, the run GitHub made is found again and returned.
	e.sim.Faults().Set(fault.Rule{Method: "POST", Path: "/repos/acme/app/check-runs", Times: 1, Status: http.StatusBadGateway, AfterServe: true})
	ref, err := e.rep.CreateCheckRun(ctx, CheckRun{Name: "deploybot/preview", HeadSHA: e.headSHA, ExternalID: "run-7"})
	if err != nil {
		t.Fatalf("create with an external id after a lost answer: %v", err)
	}
	runs := e.state().CheckRuns
	if n := len(runs); n != 2 || runs[1].ID != ref.ID {
		t.Fatalf("%d check runs (returned %d), want the one GitHub made returned: %+v", n, ref.ID, runs)
	}

	// A deployment status may be posted twice (the newest counts): a lost
	// answer is retried rather than failing the caller.
	id, err := e.rep.CreateDeployment(ctx, Deployment{Ref: e.headSHA, Environment: "preview", Transient: true, PR: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Faults().Set(fault.Rule{Method: "POST", Path: fmt.Sprintf("/repos/acme/app/deployments/%d/statuses", id), Times: 1, Status: http.StatusBadGateway, AfterServe: true})
	if err := e.rep.SetDeploymentStatus(ctx, id, DeploymentStatus{State: DeploySuccess}); err != nil {
		t.Fatalf("deployment status after a lost answer: %v", err)
	}
}

// TestStatusCommentSaysSinceWhen: StatusComment gives the status comment's
// body and the time GitHub last saved it, which a fork approval compares
// with the time of the maintainer's comment.
func TestStatusCommentSaysSinceWhen(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	if _, found, err := e.rep.StatusComment(ctx, 1, 0); err != nil || found {
		t.Fatalf("before any status comment: found %v, err %v", found, err)
	}
	// A person quoting the marker is not the status comment.
	_, err := e.sim.AddComment(repo, 1, "alice", StatusMarker(1)+"\nfake status")
	must(t, err)
	if c, found, err := e.rep.StatusComment(ctx, 1, 0); err != nil || found {
		t.Fatalf("a person's comment with the marker: found %v (%+v), err %v", found, c, err)
	}

	shown := e.clock.Now().UTC().Truncate(time.Second)
	id, err := e.rep.UpsertStatusComment(ctx, 1, "awaiting approval of abc", 0)
	must(t, err)
	must(t, e.clock.Sleep(ctx, time.Minute))
	// (The pipeline never writes a body the comment already shows: it
	// reads the comment once per run and remembers what it wrote since.)
	c, found, err := e.rep.StatusComment(ctx, 1, id)
	must(t, err)
	if !found || c.ID != id || !strings.HasSuffix(c.Body, "awaiting approval of abc") || !c.UpdatedAt.Equal(shown) {
		t.Errorf("status comment: found %v, %+v; want id %d, the body, updated at %s", found, c, id, shown)
	}

	_, err = e.rep.UpsertStatusComment(ctx, 1, "awaiting approval of def", id)
	must(t, err)
	c, _, err = e.rep.StatusComment(ctx, 1, 0) // found by searching
	must(t, err)
	if want := shown.Add(time.Minute); c.ID != id || !strings.HasSuffix(c.Body, "def") || !c.UpdatedAt.Equal(want) {
		t.Errorf("after an edit: %+v; want id %d, the new body, updated at %s", c, id, want)
	}
}

// TestNamesStayInTheirPath: a branch or revision from a delivery becomes
// part of a request path. Names git forbids are refused before any request
// (x/../../user once became GET /repos/user), and names git allows but
// URLs treat specially ("#", "%") stay inside the repository's path.
func TestNamesStayInTheirPath(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	before := len(e.requestPaths())
	for _, bad := range []string{"x/../../user", "../../../user", "a b", "main?x=1"} {
		if _, _, err := e.rep.BranchHead(ctx, bad); err == nil || !strings.Contains(err.Error(), "branch name") {
			t.Errorf("BranchHead(%q) = %v, want a refusal naming the branch", bad, err)
		}
		if _, err := e.rep.File(ctx, ".github/deploybot.yml", bad); err == nil || !strings.Contains(err.Error(), "branch name") {
			t.Errorf("File(at %q) = %v, want a refusal", bad, err)
		}
		if rc, err := e.rep.Tarball(ctx, bad); err == nil || !strings.Contains(err.Error(), "branch name") {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Tarball(%q) = %v, want a refusal", bad, err)
		}
	}
	for _, login := range []string{"..", "../../../user", "a/b", "x?y"} {
		if role, err := e.rep.CollaboratorRole(ctx, login); err != nil || role != RoleNone {
			t.Errorf("CollaboratorRole(%q) = %q, %v; want none", login, role, err)
		}
	}
	if _, _, err := e.rep.FindCheckRun(ctx, "../../../user", "deploybot/preview"); err == nil {
		t.Error("FindCheckRun with a path for a SHA: no error")
	}
	if got := repoPaths(e.requestPaths()[before:]); len(got) != 0 {
		t.Errorf("refused names still sent requests: %v", got)
	}

	odd := "fix#12/100%"
	if _, found, err := e.rep.BranchHead(ctx, odd); err != nil || found {
		t.Errorf("BranchHead(%q) = found %v, %v; want not found", odd, found, err)
	}
	if rc, err := e.rep.Tarball(ctx, odd); err == nil {
		rc.Close()
	}
	got := e.requestPaths()[before:]
	if len(repoPaths(got)) == 0 {
		t.Fatal("no request for a valid branch name")
	}
	for _, p := range got {
		if strings.HasPrefix(p, "/app/installations/") {
			continue // the installation token
		}
		if !strings.HasPrefix(p, "/repos/"+repo+"/") || strings.Contains(p, "#") {
			t.Errorf("request path %q left the repository's path", p)
		}
	}
	if want := "/repos/" + repo + "/git/ref/heads/fix%2312/100%25"; !slices.Contains(got, want) {
		t.Errorf("paths %v lack %s", got, want)
	}
}

// repoPaths leaves out the installation-token requests.
func repoPaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		if !strings.HasPrefix(p, "/app/installations/") {
			out = append(out, p)
		}
	}
	return out
}

// TestAppLogin: the bot learns its own login from GET /app with the App's
// JWT, and a wrong App id says which key to check.
func TestAppLogin(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	creator, err := NewClientCreator(e.cfg)
	must(t, err)
	login, err := AppLogin(t.Context(), creator, e.cfg.AppID)
	if err != nil || login != e.sim.BotLogin() {
		t.Fatalf("AppLogin = %q, %v; want %q", login, err, e.sim.BotLogin())
	}
	wrong := e.cfg
	wrong.AppID++
	creator, err = NewClientCreator(wrong)
	must(t, err)
	_, err = AppLogin(t.Context(), creator, wrong.AppID)
	var ae *AppError
	if !errors.As(err, &ae) || !ae.Refused() || ae.URL != e.cfg.V3APIURL+"app" || !strings.Contains(err.Error(), "GET "+ae.URL+" answered 401 Unauthorized") {
		t.Fatalf("a wrong App id: %v", err)
	}
}
