package pipeline_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/demo"
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
// user or outsider starts anything; no fork runs without an approval of its
// exact commit.
func TestCommandMatrix(t *testing.T) {
	e := start(t)
	roles := map[string]string{"ada": "admin", "max": "maintain", "wes": "write", "tia": "triage", "reo": "read"}
	for user, role := range roles {
		e.must(e.gh.SetPermission(demo.Repo, user, role))
	}
	kinds := []string{"same-repo", "fork", "draft", "closed"}
	actors := []string{"ada", "max", "wes", "tia", "reo", "stranger"}
	cmds := []string{"/deploy", "/redeploy", "/destroy", "/help"}

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
					comment := e.say(pr, actor, cmd)
					e.idle()

					reacts := strings.Join(e.reactions(comment), ",")
					replies := e.replies(pr)
					live := e.live(host("web", pr))
					if !allowed {
						if reacts != "confused" || len(replies) != 1 || !strings.Contains(replies[0], "not allowed") {
							t.Errorf("refusal: reactions %q, replies %q", reacts, replies)
						}
						if live != "" || e.checkRunsOf(sha) != 0 {
							t.Errorf("a refused command started work: live %q, %d check runs", live, e.checkRunsOf(sha))
						}
						for _, r := range replies {
							if strings.Contains(r, "role") || strings.Contains(r, "allow") && !strings.Contains(r, "not allowed") {
								t.Errorf("the refusal reveals configuration: %q", r)
							}
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
								wantLive = sha // approved by the maintainer's /deploy
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

// TestForkApprovalIsPerCommit: a maintainer's /deploy approves the head
// at that moment; a later push needs a new approval, and a push between the
// comment and the bot acting on it is not approved.
func TestForkApprovalIsPerCommit(t *testing.T) {
	e := start(t)
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	sha1, err := e.gh.Commit(demo.Repo, "fork/x", map[string]string{"web/src/f.js": "1\n"}, "one")
	e.must(err)
	pr, err := e.gh.OpenPR(demo.Repo, "fork/x", "main", "From a fork", true, false)
	e.must(err)
	e.event(pr, "opened")
	e.idle()
	e.say(pr, "ada", "/deploy")
	e.idle()
	if e.live(host("web", pr)) != sha1 {
		t.Fatalf("approved commit not deployed: %q", e.live(host("web", pr)))
	}
	// The fork's database branch holds the schema, not production's data.
	if !e.tableExists(fmt.Sprintf("pr-%d", pr), "users") {
		t.Error("fork branch lacks the schema")
	}

	// A new push is not deployed without a new approval.
	sha2 := e.push(pr, map[string]string{"web/src/f.js": "2\n"})
	e.event(pr, "synchronize")
	e.idle()
	if e.live(host("web", pr)) != sha1 {
		t.Errorf("unapproved commit %s went live", sha2[:7])
	}
	if c := e.comment(pr); !strings.Contains(c, "awaiting approval") || !strings.Contains(c, sha2[:7]) {
		t.Errorf("comment:\n%s", c)
	}

	// A /deploy written before a push (the bot learns of both afterwards)
	// does not approve the pushed commit.
	comment, err := e.gh.AddComment(demo.Repo, pr, "ada", "/deploy")
	e.must(err)
	ev, err := e.gh.IssueCommentEvent(demo.Repo, comment)
	e.must(err)
	sha3 := e.push(pr, map[string]string{"web/src/f.js": "3\n"})
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	e.event(pr, "synchronize")
	e.idle()
	if got := e.live(host("web", pr)); got == sha3 {
		t.Errorf("a commit pushed after the /deploy comment was deployed")
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
