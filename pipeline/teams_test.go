package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/pgtest"
)

// The sample repository's owner is an organisation with a team of
// deployers; commands.allow and commands.only name it as GitHub writes it.
const (
	deployers           = "@" + demo.Owner + "/deployers"
	routeTeamMembership = "GET /orgs/{org}/teams/{team_slug}/memberships/{username}"
)

// withDeployers creates the organisation and its team, with members
// (login → "active" or "pending"), and gives users their roles.
func (e *env) withDeployers(members, roles map[string]string) {
	e.t.Helper()
	e.must(e.gh.CreateOrg(demo.Owner))
	e.must(e.gh.CreateTeam(demo.Owner, "deployers"))
	for user, state := range members {
		e.must(e.gh.AddTeamMember(demo.Owner, "deployers", user, state))
	}
	for user, role := range roles {
		e.must(e.gh.SetPermission(demo.Repo, user, role))
	}
}

// newPR opens a pull request from a new branch and returns it with its head.
func (e *env) newPR(branch string) (int, string) {
	e.t.Helper()
	return e.open(branch, map[string]string{"web/src/t.js": branch + "\n"}, false)
}

// expectDeployed checks that user's /deploy on pr was carried out.
func (e *env) expectDeployed(pr int, sha, user string) {
	e.t.Helper()
	c := e.say(pr, user, "/deploy")
	e.idle()
	if got := strings.Join(e.reactions(c), ","); got != "eyes,rocket" || e.live(host("web", pr)) != sha {
		e.t.Errorf("%s's /deploy: reactions %q, live %q, replies %q; want eyes,rocket and %s live", user, got, e.live(host("web", pr)), e.replies(pr), sha[:7])
	}
}

// expectRefused checks that user's first /deploy on pr was refused as any
// refusal is: a 😕 and no reply (so nothing about teams), nothing started.
func (e *env) expectRefused(pr int, sha, user string) {
	e.t.Helper()
	before := len(e.replies(pr))
	c := e.say(pr, user, "/deploy")
	e.idle()
	replies := e.replies(pr)[before:]
	if got := strings.Join(e.reactions(c), ","); got != "confused" || len(replies) != 0 {
		e.t.Errorf("%s's /deploy: reactions %q, replies %q; want a 😕 and no reply", user, got, replies)
	}
	if live := e.live(host("web", pr)); live != "" || e.checkRunsOf(sha) != 0 {
		e.t.Errorf("%s's refused /deploy started work: live %q, %d check runs", user, live, e.checkRunsOf(sha))
	}
}

// TestTeamInAllowWidens: an active member of a team in commands.allow runs
// commands with only the read role, and a burst of them costs one
// membership lookup; an invited (pending) member does not.
func TestTeamInAllowWidens(t *testing.T) {
	e := startWith(t, demo.StackOptions{Commands: config.RepoCommands{Allow: []string{deployers}}})
	e.withDeployers(map[string]string{"rita": "active", "pat": "pending"}, map[string]string{"rita": "read", "pat": "read"})

	pr, sha := e.newPR("t/allow")
	for range 2 {
		c := e.say(pr, "rita", "/help")
		e.idle()
		if got := strings.Join(e.reactions(c), ","); got != "eyes,rocket" {
			t.Fatalf("rita's /help: reactions %q, replies %q", got, e.replies(pr))
		}
	}
	if n := e.gh.Snapshot().Requests[routeTeamMembership]; n != 1 {
		t.Errorf("%d membership lookups for two commands, want 1 (cached)", n)
	}
	e.expectDeployed(pr, sha, "rita")

	pr, sha = e.newPR("t/pending")
	e.expectRefused(pr, sha, "pat")
}

// TestTeamInOnlyNarrows: with commands.only naming a team, a writer outside
// it is refused and a writer in it is let in; a member still needs an
// allowed role.
func TestTeamInOnlyNarrows(t *testing.T) {
	e := startWith(t, demo.StackOptions{Commands: config.RepoCommands{Only: []string{deployers}}})
	e.withDeployers(map[string]string{"wendy": "active", "rita": "active"}, map[string]string{"wendy": "write", "wes": "write", "rita": "read"})

	pr, sha := e.newPR("t/only")
	e.expectRefused(pr, sha, "wes")
	e.expectRefused(pr, sha, "rita")
	e.expectDeployed(pr, sha, "wendy")
}

// TestTeamWithoutMembersPermission: when the App was not granted "Members:
// read", a team cannot be checked. A user named in commands.only still gets
// in; a team member is refused (nothing starts) and the log says, at
// warning level, which permission is missing; once it is granted, the next
// command works (failures are not cached).
func TestTeamWithoutMembersPermission(t *testing.T) {
	e, logs := startLogged(t, demo.StackOptions{Commands: config.RepoCommands{Only: []string{"ada", deployers}}})
	e.withDeployers(map[string]string{"wendy": "active"}, map[string]string{"wendy": "write", "ada": "admin"})
	e.gh.SetMembersPermission(false)

	pr, sha := e.newPR("t/perm")
	e.expectRefused(pr, sha, "wendy")
	var warned bool
	for _, l := range logs.lines(t) {
		if l["message"] == "command refused" && l["user"] == "wendy" {
			reason, _ := l["reason"].(string)
			warned = l["level"] == "warn" && strings.Contains(reason, `"Members: read"`) && strings.Contains(reason, deployers)
			if !warned {
				t.Errorf("refusal logged as %v", l)
			}
		}
	}
	if !warned {
		t.Error("no warning names the missing permission")
	}
	if n := e.gh.Snapshot().Responses[routeTeamMembership][403]; n != 1 {
		t.Errorf("%d membership lookups refused with 403, want 1", n)
	}

	c := e.say(pr, "ada", "/help")
	e.idle()
	if got := strings.Join(e.reactions(c), ","); got != "eyes,rocket" {
		t.Errorf("ada, named in commands.only: reactions %q", got)
	}

	e.gh.SetMembersPermission(true)
	e.expectDeployed(pr, sha, "wendy")
}

// startLogged is startWith keeping the bot's JSON log, for tests of what an
// operator is told.
func startLogged(t *testing.T, opts demo.StackOptions) (*env, *logBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	_, dbURL := pgtest.NewDatabaseURL(t)
	logs := &logBuffer{}
	opts.AdminURL, opts.DatabaseURL, opts.DataDir = pgtest.ServerURL(t), dbURL, t.TempDir()
	opts.Logger, opts.HealthWithin = zerolog.New(logs).Level(zerolog.InfoLevel), 3*time.Second
	s, err := demo.StartStack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &env{t: t, ctx: ctx, s: s, gh: s.Sandbox.GitHub}, logs
}

// logBuffer collects log lines written from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	data := append([]byte(nil), b.buf.Bytes()...)
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}
