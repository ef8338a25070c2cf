package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// The repository page, /repos/{owner}/{name}: its open previews, its
// production history and queue, who holds its production lock, and its
// runs, filtered by kind and status, 50 a page.

// ListReader is what the repository page and the overview read.
type ListReader interface {
	// Runs lists a repository's runs, newest first.
	Runs(ctx context.Context, f state.ListFilter) ([]state.Listed, error)
	// OpenPreviews lists a repository's previews not torn down.
	OpenPreviews(ctx context.Context, repo string) ([]state.OpenPreview, error)
	// ProductionQueue is a repository's production jobs waiting or
	// running, its production runs going on, and whether its production
	// lock is held.
	ProductionQueue(ctx context.Context, repo string) (ProductionQueue, error)
	// Repos lists the repositories the bot has runs or previews of.
	Repos(ctx context.Context) ([]string, error)
	// Operations is what the overview shows operators.
	Operations(ctx context.Context, failedSince time.Time) (Operations, error)
}

// ProductionQueue is what holds or waits for a repository's production.
type ProductionQueue struct {
	Jobs     []state.QueuedJob
	Running  []state.Listed
	LockHeld bool
}

// Operations is the overview's data, from the database.
type Operations struct {
	Queue         []state.JobsOfKind
	Failed        []state.Listed
	PreviewsAlive int
}

// failedShown bounds the overview's list of failures.
const failedShown = 100

func (r stateReader) Runs(ctx context.Context, f state.ListFilter) ([]state.Listed, error) {
	return r.st.Runs.List(ctx, f)
}

func (r stateReader) OpenPreviews(ctx context.Context, repo string) ([]state.OpenPreview, error) {
	return r.st.Previews.Open(ctx, repo)
}

func (r stateReader) ProductionQueue(ctx context.Context, repo string) (ProductionQueue, error) {
	var q ProductionQueue
	var err error
	if q.Jobs, err = r.st.Jobs.Production(ctx, repo); err != nil {
		return q, err
	}
	if q.Running, err = r.st.Runs.Active(ctx, repo, "production"); err != nil {
		return q, err
	}
	q.LockHeld, err = r.st.LockHeld(ctx, state.ProductionLock(repo))
	return q, err
}

func (r stateReader) Repos(ctx context.Context) ([]string, error) { return r.st.Runs.Repos(ctx) }

func (r stateReader) Operations(ctx context.Context, failedSince time.Time) (Operations, error) {
	var o Operations
	var err error
	if o.Queue, err = r.st.Jobs.Waiting(ctx); err != nil {
		return o, err
	}
	sort.Slice(o.Queue, func(i, j int) bool { return o.Queue[i].Kind < o.Queue[j].Kind })
	if o.Failed, err = r.st.Runs.FailedSince(ctx, failedSince, failedShown); err != nil {
		return o, err
	}
	o.PreviewsAlive, err = r.st.Previews.Alive(ctx)
	return o, err
}

// runsPage is how many runs the repository page lists at a time.
const runsPage = 50

// productionShown is how many production runs the history shows; the
// runs list filtered by kind pages through the rest.
const productionShown = 10

// The kinds and statuses a run can have: the filters accept these only.
var (
	runKinds    = []string{"preview", "teardown", "production", "test"}
	runStatuses = []string{"queued", "running", "succeeded", "failed", "cancelled", "skipped", "blocked"}
)

// repoName matches GitHub's owner and repository names.
var repoName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// repoView is what the repository page shows.
type repoView struct {
	Base   string
	Title  string
	Viewer *login.User
	Repo   string
	URL    string // on GitHub

	Previews   []previewRow
	Production []runRow
	Queue      []jobRow
	Running    []runRow
	LockHeld   bool

	Runs            []runRow
	Kind, Status    string
	Kinds, Statuses []string
	// Newer and Older link the runs' pages ("": none).
	Newer, Older string
}

type previewRow struct {
	state.OpenPreview
	PRURL, CommitURL string
	Links            []link
	Age, Updated     string
}

// runRow is a run in a list.
type runRow struct {
	state.Listed
	Page      string // its run page, relative to the list's page
	Target    string // "#12" or the branch
	TargetURL string
	CommitURL string
	Age       string
	Duration  string
	Versions  []string // "script version", sorted
}

type jobRow struct {
	state.QueuedJob
	CommitURL string
	Waited    string
}

func (h *Handler) repoPage(w http.ResponseWriter, r *http.Request) {
	owner, name := r.PathValue("owner"), r.PathValue("name")
	repo := owner + "/" + name
	ok := repoName.MatchString(owner) && repoName.MatchString(name)
	if ok {
		var err error
		if ok, err = h.opts.Access.CanRead(r.Context(), r, repo); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if !ok {
		http.Error(w, fmt.Sprintf("repository %s not found", repo), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	v := repoView{Base: "../../", Viewer: Viewer(r.Context()), Repo: repo, URL: h.opts.GitHubURL + "/" + repo,
		Kind: q.Get("kind"), Status: q.Get("status"), Kinds: runKinds, Statuses: runStatuses}
	v.Title = repo
	f := state.ListFilter{Repo: repo, Kind: v.Kind, Status: v.Status, Limit: runsPage + 1}
	var bad []string
	if v.Kind != "" && !slices.Contains(runKinds, v.Kind) {
		bad = append(bad, fmt.Sprintf("kind %q is not one of %s", v.Kind, strings.Join(runKinds, ", ")))
	}
	if v.Status != "" && !slices.Contains(runStatuses, v.Status) {
		bad = append(bad, fmt.Sprintf("status %q is not one of %s", v.Status, strings.Join(runStatuses, ", ")))
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			bad = append(bad, fmt.Sprintf("before %q is not a run id (a positive number)", b))
		}
		f.Before = n
	}
	if len(bad) > 0 {
		http.Error(w, "the runs' filter: "+strings.Join(bad, "; "), http.StatusBadRequest)
		return
	}
	if err := h.readRepo(r.Context(), &v, f); err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "repo.html", v)
}

// readRepo fills v with repo's previews, production and runs matching f.
func (h *Handler) readRepo(ctx context.Context, v *repoView, f state.ListFilter) error {
	now := h.opts.Now()
	rd := h.opts.Reader
	previews, err := rd.OpenPreviews(ctx, v.Repo)
	if err != nil {
		return err
	}
	for _, p := range previews {
		row := previewRow{OpenPreview: p, PRURL: v.URL + "/pull/" + strconv.Itoa(p.PR), Updated: ago(now, p.Updated)}
		if p.DeployedSHA != "" {
			row.CommitURL = v.URL + "/commit/" + p.DeployedSHA
		}
		if !p.Opened.IsZero() {
			row.Age = duration(now.Sub(p.Opened))
		}
		for _, wk := range p.Resources.Workers {
			if wk.Hostname != "" {
				row.Links = append(row.Links, link{Text: wk.Name, URL: h.opts.PreviewScheme + "://" + wk.Hostname})
			}
		}
		v.Previews = append(v.Previews, row)
	}
	prod, err := rd.Runs(ctx, state.ListFilter{Repo: v.Repo, Kind: "production", Limit: productionShown})
	if err != nil {
		return err
	}
	v.Production = h.runRows(now, v.Base, prod)
	queue, err := rd.ProductionQueue(ctx, v.Repo)
	if err != nil {
		return err
	}
	v.LockHeld, v.Running = queue.LockHeld, h.runRows(now, v.Base, queue.Running)
	for _, j := range queue.Jobs {
		row := jobRow{QueuedJob: j, Waited: duration(now.Sub(j.Created))}
		if j.SHA != "" {
			row.CommitURL = v.URL + "/commit/" + j.SHA
		}
		v.Queue = append(v.Queue, row)
	}
	runs, err := rd.Runs(ctx, f)
	if err != nil {
		return err
	}
	if len(runs) > runsPage {
		runs = runs[:runsPage]
		v.Older = v.filterURL(runs[len(runs)-1].ID)
	}
	if f.Before > 0 {
		v.Newer = v.filterURL(0)
	}
	v.Runs = h.runRows(now, v.Base, runs)
	return nil
}

// filterURL is the page's own address with its filter, from run before.
func (v *repoView) filterURL(before int64) string {
	q := url.Values{}
	if v.Kind != "" {
		q.Set("kind", v.Kind)
	}
	if v.Status != "" {
		q.Set("status", v.Status)
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	return "?" + q.Encode() + "#runs"
}

// runRows makes runs rows of a page whose root is base.
func (h *Handler) runRows(now time.Time, base string, runs []state.Listed) []runRow {
	out := make([]runRow, 0, len(runs))
	for _, l := range runs {
		repoURL := h.opts.GitHubURL + "/" + l.Repo
		row := runRow{Listed: l, Page: base + "runs/" + strconv.FormatInt(l.ID, 10), Age: ago(now, l.Started)}
		switch {
		case l.PR > 0:
			row.Target, row.TargetURL = "#"+strconv.Itoa(l.PR), repoURL+"/pull/"+strconv.Itoa(l.PR)
		case l.Branch != "":
			row.Target, row.TargetURL = l.Branch, repoURL+"/tree/"+url.PathEscape(l.Branch)
		}
		if l.HeadSHA != "" {
			row.CommitURL = repoURL + "/commit/" + l.HeadSHA
		}
		end := l.Finished
		if end.IsZero() {
			end = now
		}
		row.Duration = duration(end.Sub(l.Started))
		for script, version := range l.Versions {
			row.Versions = append(row.Versions, script+" "+version)
		}
		sort.Strings(row.Versions)
		out = append(out, row)
	}
	return out
}

// ago is how long before now t was, as people read it.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return duration(now.Sub(t)) + " ago"
}

// render executes page with v and sends it.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, page string, v any) {
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	if err := h.pages.ExecuteTemplate(&buf, page, v); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}
