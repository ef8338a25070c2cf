package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/web"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// site is the pages over a fresh database, with the hub fed by the
// database's notifications as in the bot.
type site struct {
	st  *state.Store
	srv *httptest.Server
}

func newSite(t *testing.T, access web.Access) *site {
	t.Helper()
	pool := pgtest.NewDatabase(t)
	st := state.New(pool)
	hub := web.NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { state.ListenRuns(ctx, pool, hub.Notify); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Streams never poll here: only the database's notifications wake them.
	h, err := web.New(web.Options{Reader: web.StateReader(st), Hub: hub, Access: access, Logger: zerolog.Nop(), PollEvery: time.Hour})
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &site{st: st, srv: srv}
}

func (s *site) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(s.srv.URL + path)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, string(b)
}

// TestRunPage: the page shows the run's header, each step in the
// timeline and its whole log, escaped, with the cut marked; an unknown run
// and a run the viewer may not read are both 404.
func TestRunPage(t *testing.T) {
	s := newSite(t, nil)
	ctx := t.Context()
	run, err := s.st.Runs.Start(ctx, state.Run{Kind: "preview", Repo: "acme/shop", PR: 12, HeadSHA: "0123456789abcdef", Reason: "pull_request.opened", Actor: "octocat"})
	must(t, err)
	must(t, s.st.Runs.AttachCheckRun(ctx, run, 4242))
	must(t, s.st.Steps.Plan(ctx, run, []string{"source", "build:web"}))
	t0 := time.Now().Add(-time.Minute)
	must(t, s.st.Steps.Plan(ctx, run, []string{"database"}))
	must(t, s.st.Steps.Update(ctx, run, state.Step{Name: "database", Status: "succeeded", Started: t0, Finished: t0.Add(time.Second), Log: "branch pr-12 ready\n"}))
	must(t, s.st.Steps.Update(ctx, run, state.Step{Name: "source", Status: "succeeded", Started: t0, Finished: t0.Add(2 * time.Second)}))
	must(t, s.st.Steps.Update(ctx, run, state.Step{Name: "build:web", Status: "failed", Started: t0.Add(2 * time.Second), Finished: t0.Add(40 * time.Second), Err: "runner: command exited with status 2"}))
	_, err = s.st.Steps.WriteLog(ctx, run, state.LogWrite{Chunks: []state.LogChunk{
		{Step: "source", Text: "fetched 0123456\n"},
		{Step: "build:web", Text: "<script>alert(1)</script>\n"},
		{Step: "build:web", Marker: true, Cut: 5000},
		{Step: "build:web", Text: "error TS2304\n"},
	}})
	must(t, err)
	must(t, s.st.Runs.Finish(ctx, run, "failed", "step build:web: runner: command exited with status 2"))

	code, page := s.get(t, "/runs/"+strconv.FormatInt(run, 10))
	if code != http.StatusOK {
		t.Fatalf("GET the run page: %d %s", code, page)
	}
	for _, want := range []string{
		`<dd id="run-repo">acme/shop</dd>`,
		`<a href="https://github.com/acme/shop/pull/12">#12</a>`,
		`<a href="https://github.com/acme/shop/commit/0123456789abcdef"><code>0123456</code></a>`,
		`<dd id="run-trigger">pull_request.opened</dd>`,
		`<dd id="run-actor">octocat</dd>`,
		`<dd id="run-status" class="badge status-failed">failed</dd>`,
		`<a href="https://github.com/acme/shop/runs/4242">on GitHub</a>`,
		`id="bar-source"`, `id="bar-build:web"`,
		`<details class="step status-failed" id="step-build:web" open>`,
		`runner: command exited with status 2`,
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`<span class="cut">… 4.9 KiB cut …</span>`,
		"error TS2304\n</pre>",
		`<pre class="log" id="log-source">fetched 0123456` + "\n</pre>",
		// A step whose whole log was not kept shows its tail, and says so.
		`<pre class="log" id="log-database"><span class="cut">This step&#39;s whole output was not kept: its last 8 KiB, as its check run shows them.</span>` + "\nbranch pr-12 ready\n</pre>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Error("a step's output reached the page as HTML")
	}

	if code, _ := s.get(t, "/runs/"+strconv.FormatInt(run+1, 10)); code != http.StatusNotFound {
		t.Errorf("an unknown run: %d, want 404", code)
	}
	if code, _ := s.get(t, "/runs/abc"); code != http.StatusNotFound {
		t.Errorf("a run id that is not a number: %d, want 404", code)
	}
	if code, body := s.get(t, "/assets/run.js"); code != http.StatusOK || !strings.Contains(body, "EventSource") {
		t.Errorf("the page's script: %d", code)
	}

	denied := newSite(t, onlyRepo("acme/other"))
	run2, err := denied.st.Runs.Start(ctx, state.Run{Kind: "production", Repo: "acme/shop", Branch: "main", HeadSHA: "abc"})
	must(t, err)
	if code, body := denied.get(t, "/runs/"+strconv.FormatInt(run2, 10)); code != http.StatusNotFound || strings.Contains(body, "acme/shop") {
		t.Errorf("a run the viewer may not read: %d %q, want 404 without the run", code, body)
	}
	if code, _ := denied.get(t, "/runs/"+strconv.FormatInt(run2, 10)+"/events"); code != http.StatusNotFound {
		t.Errorf("the stream of a run the viewer may not read: %d, want 404", code)
	}
}

// TestUnderAPath: behind a proxy that serves the bot under a path and
// strips it, the page's relative links still reach its style sheet,
// script and stream.
func TestUnderAPath(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	st := state.New(pool)
	run, err := st.Runs.Start(t.Context(), state.Run{Kind: "test", Repo: "acme/shop", Branch: "main", HeadSHA: "abc"})
	must(t, err)
	must(t, st.Runs.Finish(t.Context(), run, "succeeded", ""))
	h, err := web.New(web.Options{Reader: web.StateReader(st), Logger: zerolog.Nop()})
	must(t, err)
	srv := httptest.NewServer(http.StripPrefix("/deploybot", h))
	defer srv.Close()
	page, err := url.Parse(fmt.Sprintf("%s/deploybot/runs/%d", srv.URL, run))
	must(t, err)
	for _, ref := range []string{"", "../assets/web.css", "../assets/run.js", strconv.FormatInt(run, 10) + "/events"} {
		u := page.ResolveReference(&url.URL{Path: ref})
		resp, err := http.Get(u.String())
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
		if ref == "" && (!strings.Contains(string(body), `href="../assets/web.css"`) || !strings.Contains(string(body), `src="../assets/run.js"`)) {
			t.Errorf("the page does not link its assets relatively")
		}
	}
}

type onlyRepo string

func (o onlyRepo) CanRead(_ context.Context, _ *http.Request, repo string) (bool, error) {
	return repo == string(o), nil
}

// sse reads one stream's events.
type sse struct {
	t    *testing.T
	body io.ReadCloser
	r    *bufio.Reader
}

type event struct {
	name, id string
	data     map[string]string
}

func openStream(t *testing.T, url string, lastID string) *sse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	must(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sse{t: t, body: resp.Body, r: bufio.NewReader(resp.Body)}
}

// next returns the next event (io.EOF at the stream's end).
func (s *sse) next() (event, error) {
	var ev event
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && ev.name != "":
			return ev, nil
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				s.t.Fatalf("event data %q: %v", line, err)
			}
		}
	}
}

// until reads events until one named name whose field key is value.
func (s *sse) until(name, key, value string) []event {
	s.t.Helper()
	var seen []event
	for {
		ev, err := s.next()
		if err != nil {
			s.t.Fatalf("the stream ended (%v) before a %s event with %s %q; got %v", err, name, key, value, seen)
		}
		seen = append(seen, ev)
		if ev.name == name && ev.data[key] == value {
			return seen
		}
	}
}

// TestRunEvents: a stream first sends the steps and the stored log, then
// what is written as it is written — told by the database's notifications
// — and the run's end; a reconnecting client gets only what it missed.
func TestRunEvents(t *testing.T) {
	s := newSite(t, nil)
	ctx := t.Context()
	run, err := s.st.Runs.Start(ctx, state.Run{Kind: "test", Repo: "acme/shop", Branch: "main", HeadSHA: "abc"})
	must(t, err)
	must(t, s.st.Steps.Plan(ctx, run, []string{"unit"}))
	now := time.Now()
	must(t, s.st.Steps.Update(ctx, run, state.Step{Name: "unit", Status: "running", Started: now}))
	ids, err := s.st.Steps.WriteLog(ctx, run, state.LogWrite{Chunks: []state.LogChunk{{Step: "unit", Text: "stored line\n"}}})
	must(t, err)
	url := s.srv.URL + "/runs/" + strconv.FormatInt(run, 10) + "/events"

	stream := openStream(t, url+"?after=0", "")
	stream.until("step", "status", "running")
	if got := stream.until("log", "text", "stored line\n"); got[len(got)-1].id != strconv.FormatInt(ids[0], 10) {
		t.Fatalf("the stored line's event id is %q, want the chunk's id %d", got[len(got)-1].id, ids[0])
	}

	// Written after the stream caught up: only a notification brings it.
	more, err := s.st.Steps.WriteLog(ctx, run, state.LogWrite{Chunks: []state.LogChunk{{Step: "unit", Text: "live line\n"}}})
	must(t, err)
	stream.until("log", "text", "live line\n")
	must(t, s.st.Steps.Update(ctx, run, state.Step{Name: "unit", Status: "succeeded", Started: now, Finished: time.Now()}))
	stream.until("step", "status", "succeeded")
	_, err = s.st.Steps.WriteLog(ctx, run, state.LogWrite{Chunks: []state.LogChunk{{Step: "unit", Text: "last line\n"}}})
	must(t, err)
	must(t, s.st.Runs.Finish(ctx, run, "succeeded", ""))
	stream.until("end", "status", "succeeded")
	if _, err := stream.next(); err != io.EOF {
		t.Fatalf("after the end event: %v, want the stream closed", err)
	}

	// A browser reconnecting with the last id it got: the rest, then the end.
	again := openStream(t, url, strconv.FormatInt(more[0], 10))
	var texts []string
	for _, ev := range again.until("end", "status", "succeeded") {
		if ev.name == "log" {
			texts = append(texts, ev.data["text"])
		}
	}
	if strings.Join(texts, "") != "last line\n" {
		t.Fatalf("after Last-Event-ID %d the stream sent %q, want only the last line", more[0], texts)
	}
}

// requests records what the pages ask (web.Actions).
type requests struct{ asked []intent.PageAction }

func (r *requests) Request(_ context.Context, a intent.PageAction) (int64, error) {
	r.asked = append(r.asked, a)
	return int64(len(r.asked)), nil
}

func (r *requests) Recent(context.Context, int64, int) ([]state.PageAction, error) { return nil, nil }

// TestActionsNeedSignIn: pages without sign-in know nobody, so they show
// no button and refuse every action, naming what is missing.
func TestActionsNeedSignIn(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	st := state.New(pool)
	asked := &requests{}
	h, err := web.New(web.Options{Reader: web.StateReader(st), Actions: asked, Logger: zerolog.Nop(), PollEvery: time.Hour})
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	run, err := st.Runs.Start(t.Context(), state.Run{Kind: "preview", Repo: "acme/shop", PR: 12, HeadSHA: "0123456789abcdef0123456789abcdef01234567", Reason: "pull_request.opened"})
	must(t, err)
	page := srv.URL + "/runs/" + strconv.FormatInt(run, 10)

	resp, err := http.Get(page)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `id="do-`) {
		t.Errorf("the page without sign-in: %d, with buttons: %v", resp.StatusCode, strings.Contains(string(body), `id="do-`))
	}
	resp, err = http.PostForm(page+"/actions/redeploy", url.Values{"csrf": {"x"}})
	must(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "github.app.client_id") {
		t.Errorf("an action without sign-in: %d %s, want 403 naming github.app.client_id", resp.StatusCode, body)
	}
	if len(asked.asked) != 0 {
		t.Errorf("an action without sign-in was queued: %v", asked.asked)
	}
}
