package pipeline_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/revelations-studio/deploybot/internal/demo"
)

// runPageMigrate is the sample's migration, then a log longer than the 8
// KiB a check run shows, the database's URL (a secret), and a pause until
// the test writes to fifo.
func runPageMigrate(fifo string) string {
	return `set -eu
for f in migrations/*.sql; do
  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -f "$f"
done
echo "connecting to $DATABASE_URL"
i=0
while [ $i -lt 400 ]; do echo "migration log line $i, to fill more than the check run's tail"; i=$((i+1)); done
echo "waiting for the test"
read word < ` + fifo + `
echo "the test said $word"
`
}

// TestRunPage: a preview's run has a page at the bot's public URL, which
// the check run's Details, the deployment's log and the status comment
// link to. It shows the run (repository, pull request, commit, who, status),
// its steps, and a step's whole log — the beginning of which the check run's
// 8 KiB tail lost — with the database URL masked. While a step runs, the
// page's stream delivers each line as it is printed, then the step's and
// the run's end.
func TestRunPage(t *testing.T) {
	e := start(t)
	fifo := filepath.Join(e.shared, "say")
	e.must(syscall.Mkfifo(fifo, 0o666))
	pr, sha := e.open("feature/page", map[string]string{"scripts/migrate.sh": runPageMigrate(fifo)}, false)
	e.event(pr, "opened")

	say := e.waitOnFifo(fifo)
	var run int64
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT id FROM runs WHERE kind = 'preview' AND pr_number = $1`, pr).Scan(&run))
	page := e.s.BotURL + "/runs/" + strconv.FormatInt(run, 10)

	// The stream shows the step's lines while it is still running.
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, page+"/events", nil)
	e.must(err)
	resp, err := http.DefaultClient.Do(req)
	e.must(err)
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	var streamed strings.Builder
	next := func(want string) {
		t.Helper()
		for {
			name, data := readEvent(t, events)
			switch name {
			case "log":
				var c struct{ Step, Text string }
				e.must(json.Unmarshal([]byte(data), &c))
				if c.Step == "migrate" {
					streamed.WriteString(c.Text)
				}
			case "end":
				if want != "end" {
					t.Fatalf("the run ended before %q was streamed", want)
				}
				return
			}
			if want != "end" && strings.Contains(streamed.String(), want) {
				return
			}
		}
	}
	next("waiting for the test\n")
	var running string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT status FROM run_steps WHERE run_id = $1 AND name = 'migrate'`, run).Scan(&running))
	if running != "running" {
		t.Fatalf("the line before the pause was streamed with the step %s, want it running", running)
	}
	_, err = io.WriteString(say, "go\n")
	e.must(err)
	e.must(say.Close())
	next("the test said go\n")
	next("end")
	e.idle()

	for _, what := range []string{"streamed log", "page"} {
		text := streamed.String()
		if what == "page" {
			text = e.get(page)
		}
		if !strings.Contains(text, "connecting to ***\n") || strings.Contains(text, "postgres://") {
			t.Errorf("%s: the database URL is not masked", what)
		}
		if !strings.Contains(text, "migration log line 0, to fill") || !strings.Contains(text, "migration log line 399, to fill") {
			t.Errorf("%s: not the whole log of the migration", what)
		}
	}
	var tail string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT log_tail FROM run_steps WHERE run_id = $1 AND name = 'migrate'`, run).Scan(&tail))
	if strings.Contains(tail, "migration log line 0, to fill") {
		t.Fatal("the migration's first lines are within its 8 KiB tail: the test proves nothing about the whole log")
	}

	html := e.get(page)
	for _, want := range []string{
		`<dd id="run-repo">` + demo.Repo + `</dd>`,
		fmt.Sprintf(`<a href="https://github.com/%s/pull/%d">#%d</a>`, demo.Repo, pr, pr),
		`<code>` + sha[:7] + `</code>`,
		`<dd id="run-kind">preview</dd>`,
		`<dd id="run-trigger">pull_request.opened</dd>`,
		`<dd id="run-status" class="badge status-succeeded">succeeded</dd>`,
		`id="bar-migrate"`, `id="step-migrate"`, `id="step-deploy:web"`,
		fmt.Sprintf(`<a class="preview" href="http://%s">web</a>`, host("web", pr)),
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the run page lacks %s", want)
		}
	}
	if strings.Contains(html, e.s.Config.Cloudflare.APIToken.Value()) || strings.Contains(html, e.s.Config.GitHub.App.WebhookSecret.Value()) {
		t.Error("the run page shows a secret of the bot's config")
	}

	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA == sha && c.Name == "deploybot/preview" && c.DetailsURL != page {
			t.Errorf("the check run's details_url is %q, want the run's page %s", c.DetailsURL, page)
		}
	}
	if c := e.comment(pr); !strings.Contains(c, "[Details]("+page+")") {
		t.Errorf("the status comment's Details does not link the run's page:\n%s", c)
	}
	var logURLs []string
	for _, d := range e.gh.Snapshot().Deployments {
		for _, st := range d.Statuses {
			if d.SHA == sha && st.State == "success" {
				logURLs = append(logURLs, st.LogURL)
			}
		}
	}
	if len(logURLs) != 1 || logURLs[0] != page {
		t.Errorf("the deployment's log_url: %q, want the run's page", logURLs)
	}
}

// readEvent reads one Server-Sent Event: its name and data.
func readEvent(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the run's stream ended: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// get returns the body of a page of the bot.
func (e *env) get(url string) string {
	e.t.Helper()
	resp, err := http.Get(url)
	e.must(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	e.must(err)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// waitOnFifo returns fifo opened for writing, once a migration
// (runPageMigrate) waits on it, mid-step: opening it returns only then.
func (e *env) waitOnFifo(fifo string) *os.File {
	e.t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			e.t.Error(err)
		}
		opened <- f
	}()
	select {
	case f := <-opened:
		return f
	case <-e.ctx.Done():
		e.t.Fatal("the migration never waited for the test")
		return nil
	}
}
