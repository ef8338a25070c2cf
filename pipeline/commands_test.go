package pipeline_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/neon"
)

// say posts body as user on pr and delivers the comment to the bot.
func (e *env) say(pr int, user, body string) int64 {
	e.t.Helper()
	id, err := e.gh.AddComment(demo.Repo, pr, user, body)
	e.must(err)
	ev, err := e.gh.IssueCommentEvent(demo.Repo, id)
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	return id
}

// reactions on a comment, in order.
func (e *env) reactions(comment int64) []string {
	var out []string
	for _, r := range e.gh.Snapshot().Reactions {
		if r.CommentID == comment {
			out = append(out, r.Content)
		}
	}
	return out
}

// replies are the bot's comments on pr other than the status comment.
func (e *env) replies(pr int) []string {
	var out []string
	for _, c := range e.gh.Snapshot().Comments {
		if c.Issue == pr && c.Author == e.gh.BotLogin() && !strings.Contains(c.Body, "deploybot:status") {
			out = append(out, c.Body)
		}
	}
	return out
}

func (e *env) checkRunsOf(sha string) int {
	n := 0
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA == sha {
			n++
		}
	}
	return n
}

// TestCommandMatrix runs every command as every kind of actor on every kind
// of pull request, and checks the effect a person would see. No read-only
// user or outsider starts anything or gets a reply (only a 😕, once per
// person in the window); no fork runs without an approval of its exact
// commit: there /deploy names the commit, as the status comment asks.
func TestCommandMatrix(t *testing.T) {
	e := start(t)
	roles := map[string]string{"ada": "admin", "max": "maintain", "wes": "write", "tia": "triage", "reo": "read"}
	for user, role := range roles {
		e.must(e.gh.SetPermission(demo.Repo, user, role))
	}
	kinds := []string{"same-repo", "fork", "draft", "closed"}
	actors := []string{"ada", "max", "wes", "tia", "reo", "stranger"}
	cmds := []string{"/deploy", "/redeploy", "/destroy", "/help"}
	refused := map[string]int{} // actor → refused commands so far

	n := 0
	for _, kind := range kinds {
		for _, actor := range actors {
			for _, cmd := range cmds {
				n++
				allowed := actor == "ada" || actor == "max" || actor == "wes"
				// Keep the matrix affordable: the maintainer (same rules as
				// admin and writer) only on same-repo PRs.
				if actor == "max" && kind != "same-repo" {
					continue
				}
				name := fmt.Sprintf("%s/%s/%s", kind, actor, strings.TrimPrefix(cmd, "/"))
				t.Run(name, func(t *testing.T) {
					e.t = t
					branch := fmt.Sprintf("m/%d", n)
					sha, err := e.gh.Commit(demo.Repo, branch, map[string]string{"web/src/m.js": fmt.Sprintf("%d\n", n)}, "change")
					e.must(err)
					pr, err := e.gh.OpenPR(demo.Repo, branch, "main", name, kind == "fork", kind == "draft")
					e.must(err)
					if kind == "closed" {
						_, err := e.gh.ClosePR(demo.Repo, pr, false)
						e.must(err)
					}
					body := cmd
					if kind == "fork" && cmd == "/deploy" {
						body = "/deploy " + sha
					}
					comment := e.say(pr, actor, body)
					e.idle()

					reacts := strings.Join(e.reactions(comment), ",")
					replies := e.replies(pr)
					live := e.live(host("web", pr))
					if !allowed {
						// The first refusal of each person gets a 😕, the
						// later ones (within minutes) nothing at all.
						want := ""
						if refused[actor] == 0 {
							want = "confused"
						}
						refused[actor]++
						if reacts != want || len(replies) != 0 {
							t.Errorf("refusal #%d of %s: reactions %q, replies %q; want %q and no reply", refused[actor], actor, reacts, replies, want)
						}
						if live != "" || e.checkRunsOf(sha) != 0 {
							t.Errorf("a refused command started work: live %q, %d check runs", live, e.checkRunsOf(sha))
						}
						return
					}
					wantLive := ""
					success := true
					switch cmd {
					case "/deploy", "/redeploy":
						switch kind {
						case "same-repo", "draft":
							wantLive = sha
						case "fork":
							if cmd == "/deploy" {
								wantLive = sha // approved by the maintainer's /deploy <sha>
							} else {
								success = false // /redeploy approves nothing
							}
						case "closed":
							success = false
						}
					case "/help":
						if len(replies) != 1 || !strings.Contains(replies[0], "deploybot commands") {
							t.Errorf("help replies: %q", replies)
						}
					}
					if live != wantLive {
						t.Errorf("live commit %q, want %q", live, wantLive)
					}
					if success && reacts != "eyes,rocket" {
						t.Errorf("reactions %q, want eyes,rocket; replies %q", reacts, replies)
					}
					if !success && (reacts != "eyes,confused" || len(replies) != 1) {
						t.Errorf("failure feedback: reactions %q, replies %q", reacts, replies)
					}
					if kind == "fork" && wantLive != "" {
						if v, ok := e.s.Sandbox.Cloudflare.SecretValue(fmt.Sprintf("ecom-api-preview-%d", pr), "STRIPE_SECRET_KEY"); ok {
							t.Errorf("an approved fork run received a configured secret (%d bytes)", len(v))
						}
					}
				})
			}
		}
	}
}

// ghClock is the simulated GitHub's clock: it stands still except when the
// test advances it, so "in the same second" holds however slow the
// machine is (with real time, a busy machine could spread the test's steps
// past shownMargin and make a comment look written after the head was
// shown).
type ghClock struct {
	mu   sync.Mutex
	base time.Time
}

func (c *ghClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base.IsZero() {
		c.base = time.Now()
	}
	return c.base
}

func (c *ghClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base.IsZero() {
		c.base = time.Now()
	}
	c.base = c.base.Add(d)
}

// TestForkApprovalCannotBeRaced: the maintainer reviews a fork's commit and
// comments /deploy; the fork's author pushes another commit at once, and
// GitHub delivers the push's synchronize before the comment (a slow or
// redelivered delivery). The pushed commit is not run, the maintainer is
// told why and what to write, and the reviewed commit, no longer the head,
// cannot be approved either. /deploy with the whole SHA of a commit
// approves exactly it; a plain /deploy approves the head the status comment
// showed before the comment was written.
func TestForkApprovalCannotBeRaced(t *testing.T) {
	clock := &ghClock{}
	e := startWith(t, demo.StackOptions{GitHubNow: clock.Now})
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	reviewed, err := e.gh.Commit(demo.Repo, "fork/race", map[string]string{"web/src/f.js": "reviewed\n"}, "one")
	e.must(err)
	pr, err := e.gh.OpenPR(demo.Repo, "fork/race", "main", "From a fork", true, false)
	e.must(err)
	e.event(pr, "opened")
	e.idle()
	if c := e.comment(pr); !strings.Contains(c, "```text\n/deploy "+reviewed+"\n```") {
		t.Fatalf("the status comment does not show the command that approves %.7s:\n%s", reviewed, c)
	}
	clock.Advance(time.Minute) // ada reviews the commit

	nothingRan := func(what string) {
		t.Helper()
		r := e.s.Resources()
		if live := e.live(host("web", pr)); live != "" || len(r.Scripts) != 0 || len(r.CheckRuns) != 0 {
			t.Errorf("%s: live %q, scripts %v, check runs %v; want nothing run", what, live, r.Scripts, r.CheckRuns)
		}
		if _, ok := e.s.Sandbox.Cloudflare.SecretValue(fmt.Sprintf("ecom-api-preview-%d", pr), "STRIPE_SECRET_KEY"); ok {
			t.Errorf("%s: a fork's worker holds a secret", what)
		}
	}
	lastReply := func() string {
		r := e.replies(pr)
		if len(r) == 0 {
			return ""
		}
		return r[len(r)-1]
	}

	// ada writes /deploy; in the same second the author pushes, and the
	// synchronize reaches the bot first.
	comment, err := e.gh.AddComment(demo.Repo, pr, "ada", "/deploy")
	e.must(err)
	late, err := e.gh.IssueCommentEvent(demo.Repo, comment)
	e.must(err)
	pushed := e.push(pr, map[string]string{"web/src/f.js": "pushed after the review\n"})
	e.event(pr, "synchronize")
	e.idle()
	if c := e.comment(pr); !strings.Contains(c, "/deploy "+pushed) {
		t.Errorf("the status comment does not show the new head's command:\n%s", c)
	}
	_, err = e.s.Deliver(e.ctx, late)
	e.must(err)
	e.idle()
	nothingRan("the late /deploy")
	if got := strings.Join(e.reactions(comment), ","); got != "eyes,confused" {
		t.Errorf("the late /deploy: reactions %q, want eyes,confused", got)
	}
	if r := lastReply(); !strings.Contains(r, "fork") || !strings.Contains(r, "`"+pushed[:7]+"`") || !strings.Contains(r, "`/deploy "+pushed+"`") {
		t.Errorf("the refusal does not say why and what to write:\n%s", r)
	}

	// The reviewed commit, named, is no longer the head: refused, both named.
	for _, named := range []string{reviewed[:7], reviewed} {
		c := e.say(pr, "ada", "/deploy "+named)
		e.idle()
		nothingRan("/deploy " + named)
		if r := lastReply(); strings.Join(e.reactions(c), ",") != "eyes,confused" ||
			!strings.Contains(r, "`"+named+"`") || !strings.Contains(r, "`"+pushed[:7]+"`") {
			t.Errorf("/deploy %s: reactions %v, reply:\n%s", named, e.reactions(c), r)
		}
	}

	// A short SHA of the new head is not enough when the status comment did
	// not show that head before the comment (here: the same second).
	c := e.say(pr, "ada", "/deploy "+pushed[:7])
	e.idle()
	nothingRan("/deploy with a short SHA shown too late")
	if r := lastReply(); strings.Join(e.reactions(c), ",") != "eyes,confused" || !strings.Contains(r, "`/deploy "+pushed+"`") {
		t.Errorf("/deploy %s: reactions %v, reply:\n%s", pushed[:7], e.reactions(c), r)
	}

	// After reviewing it, the whole SHA approves exactly that commit.
	c = e.say(pr, "ada", "/deploy "+pushed)
	e.idle()
	if got := strings.Join(e.reactions(c), ","); got != "eyes,rocket" || e.live(host("web", pr)) != pushed {
		t.Fatalf("/deploy %s: reactions %q, live %.7q, replies %q", pushed, got, e.live(host("web", pr)), e.replies(pr))
	}
	previews := map[string][]string{}
	for _, cr := range e.gh.Snapshot().CheckRuns {
		if cr.Name == "deploybot/preview" {
			previews[cr.HeadSHA] = append(previews[cr.HeadSHA], cr.Conclusion)
		}
	}
	if fmt.Sprint(previews) != fmt.Sprint(map[string][]string{pushed: {"success"}}) {
		t.Errorf("preview check runs %v, want one success of %.7s and none of %.7s", previews, pushed, reviewed)
	}
	// The fork's database branch holds the schema, not production's data.
	if !e.tableExists(fmt.Sprintf("pr-%d", pr), "users") {
		t.Error("fork branch lacks the schema")
	}

	// A plain /deploy approves the head the status comment showed a while
	// before the comment was written.
	third := e.push(pr, map[string]string{"web/src/f.js": "three\n"})
	e.event(pr, "synchronize")
	e.idle()
	if e.live(host("web", pr)) != pushed {
		t.Errorf("a new commit went live without approval")
	}
	clock.Advance(time.Minute)
	c = e.say(pr, "ada", "/deploy")
	e.idle()
	if got := strings.Join(e.reactions(c), ","); got != "eyes,rocket" || e.live(host("web", pr)) != third {
		t.Errorf("plain /deploy of a head shown a minute before: reactions %q, live %.7q, replies %q", got, e.live(host("web", pr)), e.replies(pr))
	}
}

// TestRefusedCommandsGetNoReply: a person without permission cannot make
// the bot write. Their commands, valid or not, get no comment, and only the
// first of them in ten minutes gets a 😕; a maintainer's typo still gets
// the helpful reply.
func TestRefusedCommandsGetNoReply(t *testing.T) {
	e := start(t)
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	e.must(e.gh.SetPermission(demo.Repo, "reo", "read"))
	pr, sha := e.open("feature/outsiders", map[string]string{"web/src/o.js": "1\n"}, false)

	for i, body := range []string{"/deploy", "/destroy", "/deplyo", "/help\n/redeploy --reset-db"} {
		c := e.say(pr, "mallory", body)
		e.idle()
		want := ""
		if i == 0 {
			want = "confused"
		}
		if got := strings.Join(e.reactions(c), ","); got != want {
			t.Errorf("outsider's comment #%d %q: reactions %q, want %q", i+1, body, got, want)
		}
	}
	// Each person has a window of their own.
	c := e.say(pr, "reo", "/deploy")
	e.idle()
	if got := strings.Join(e.reactions(c), ","); got != "confused" {
		t.Errorf("a reader's first refused command: reactions %q, want confused", got)
	}
	if r := e.replies(pr); len(r) != 0 {
		t.Errorf("the bot replied to people without permission: %q", r)
	}
	if live := e.live(host("web", pr)); live != "" || e.checkRunsOf(sha) != 0 {
		t.Errorf("refused commands started work: live %q, %d check runs", live, e.checkRunsOf(sha))
	}

	// Ten minutes later (PostgreSQL's clock decides), one 😕 again.
	_, err := e.s.App.Pool.Exec(e.ctx, `UPDATE command_refusals SET reacted_at = reacted_at - interval '11 minutes' WHERE login = 'mallory'`)
	e.must(err)
	c = e.say(pr, "mallory", "/deploy")
	e.idle()
	if got := strings.Join(e.reactions(c), ","); got != "confused" {
		t.Errorf("after the window: reactions %q, want confused", got)
	}

	c = e.say(pr, "ada", "/deplyo")
	e.idle()
	if r := e.replies(pr); len(r) != 1 || !strings.Contains(r[0], "did you mean /deploy?") || strings.Join(e.reactions(c), ",") != "confused" {
		t.Errorf("maintainer's typo: replies %q, reactions %v", r, e.reactions(c))
	}
}

// TestCommandParsingFeedback: a near-miss gets the usage, other bots'
// commands and quoted or fenced commands are ignored, several commands run
// in order.
func TestCommandParsingFeedback(t *testing.T) {
	e := start(t)
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	_, err := e.gh.Commit(demo.Repo, "p/1", map[string]string{"web/src/p.js": "1\n"}, "p")
	e.must(err)
	pr, err := e.gh.OpenPR(demo.Repo, "p/1", "main", "Parsing", false, false)
	e.must(err)

	c := e.say(pr, "ada", "/depoy")
	e.idle()
	if r := e.replies(pr); len(r) != 1 || !strings.Contains(r[0], "/deploy") || strings.Join(e.reactions(c), ",") != "confused" {
		t.Errorf("near miss: replies %q, reactions %v", r, e.reactions(c))
	}

	c = e.say(pr, "ada", "> /destroy\n```\n/destroy\n```\n/lgtm\nthanks")
	e.idle()
	if len(e.replies(pr)) != 1 || len(e.reactions(c)) != 0 {
		t.Errorf("ignored lines got feedback: replies %q, reactions %v", e.replies(pr), e.reactions(c))
	}

	// Bots (other Apps, and deploybot itself) are never obeyed.
	e.must(e.gh.SetPermission(demo.Repo, "renovate[bot]", "admin"))
	c, err = e.gh.AddComment(demo.Repo, pr, "renovate[bot]", "/deploy")
	e.must(err)
	ev, err := e.gh.IssueCommentEvent(demo.Repo, c)
	e.must(err)
	d, err := e.gh.Deliver(e.ctx, e.s.HookURL, ev)
	e.must(err)
	if d.Status != 202 {
		t.Errorf("a bot's comment was answered %d, want 202 (ignored)", d.Status)
	}
	e.idle()
	if len(e.replies(pr)) != 1 || len(e.reactions(c)) != 0 || e.live(host("web", pr)) != "" {
		t.Errorf("a bot's command had an effect: replies %q, reactions %v", e.replies(pr), e.reactions(c))
	}

	c = e.say(pr, "ada", "/deploy\n/destroy")
	e.idle()
	if e.live(host("web", pr)) != "" || len(e.s.Resources().Scripts) != 0 {
		t.Error("deploy then destroy should leave nothing")
	}
	if got := strings.Join(e.reactions(c), ","); got != "eyes,rocket" {
		t.Errorf("reactions %q", got)
	}
}

// TestForkDatabasesWithinTheRootLimit: fork previews and their tests get
// schema-only databases, and Neon makes every schema-only branch a root,
// of which a project has 3 on the Free plan (the sandbox's limit). Three
// approved forks at once, each with its preview and its test run, fit: their
// branches are children of one shared schema-only copy of production. One
// of them resets its database; when all close, nothing is left, the shared
// copy included.
func TestForkDatabasesWithinTheRootLimit(t *testing.T) {
	e := start(t)
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	var prs []int
	for i := range 3 {
		branch := fmt.Sprintf("fork/db-%d", i)
		sha, err := e.gh.Commit(demo.Repo, branch, map[string]string{"web/src/f.js": fmt.Sprintf("export const f = %d;\n", i)}, "From a fork")
		e.must(err)
		pr, err := e.gh.OpenPR(demo.Repo, branch, "main", "From a fork", true, false)
		e.must(err)
		e.event(pr, "opened")
		e.idle()
		e.say(pr, "ada", "/deploy "+sha)
		prs = append(prs, pr)
	}
	e.idle()
	for _, pr := range prs {
		if c := e.comment(pr); !strings.Contains(c, "Preview ready") {
			t.Fatalf("fork PR #%d:\n%s", pr, c)
		}
	}
	branches := strings.Join(e.s.Resources().Branches, ",")
	if !strings.Contains(branches, neon.SchemaRootName("production")) {
		t.Errorf("branches %s: no shared schema-only copy", branches)
	}

	e.say(prs[0], "ada", "/redeploy --reset-db")
	e.idle()
	if c := e.comment(prs[0]); !strings.Contains(c, "Preview ready") {
		t.Fatalf("after /redeploy --reset-db:\n%s", c)
	}

	for _, pr := range prs {
		_, err := e.gh.ClosePR(demo.Repo, pr, false)
		e.must(err)
		e.event(pr, "closed")
		e.idle()
	}
	e.expectNothingLeft(prs[2])
}
