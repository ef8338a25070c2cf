package web

import (
	"context"
	"net/http"
	"time"

	"github.com/revelations-studio/deploybot/internal/login"
)

// The overview, /: the repositories the viewer may read and, for
// operators, how the bot is doing — its queue, the runs that failed in
// the last 24 hours, GitHub's rate limits, the previews alive. Operators
// are the configured admins (server.admins), or everyone when the pages
// have no sign-in (the demo, a bot behind its own authenticating proxy).

// BudgetRow is what GitHub last said of one installation's rate limit of
// one resource.
type BudgetRow struct {
	Installation int64
	Resource     string // core, graphql, search, …
	Remaining    int
	Limit        int // 0 when GitHub did not say
	At           time.Time
}

// failedWithin is how far back the overview lists failures.
const failedWithin = 24 * time.Hour

type overviewView struct {
	Base     string
	Title    string
	Viewer   *login.User
	Operator bool
	Repos    []repoLink

	Queue         []queueRow
	Failed        []runRow
	PreviewsAlive int
	Budget        []budgetRow
	HasBudget     bool // Options.Budget is set
	River         bool // River UI is served
}

type repoLink struct{ Name, Page string }

type queueRow struct {
	Kind                                     string
	Available, Scheduled, Retryable, Running int
	Oldest                                   string
}

type budgetRow struct {
	BudgetRow
	Used    int // percent of the limit used
	Low     bool
	Updated string
}

// operator reports whether the viewer sees the operators' data.
func (h *Handler) operator(ctx context.Context) bool {
	if h.opts.Login == nil {
		return true
	}
	u := Viewer(ctx)
	return u != nil && u.Admin
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := h.opts.Now()
	v := overviewView{Base: "./", Title: "Overview", Viewer: Viewer(ctx), Operator: h.operator(ctx)}
	repos, err := h.opts.Reader.Repos(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, repo := range repos {
		ok, err := h.opts.Access.CanRead(ctx, r, repo)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if ok {
			v.Repos = append(v.Repos, repoLink{Name: repo, Page: "repos/" + repo})
		}
	}
	if !v.Operator {
		v.Title = "Repositories"
		h.render(w, r, "overview.html", v)
		return
	}
	ops, err := h.opts.Reader.Operations(ctx, now.Add(-failedWithin))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, k := range ops.Queue {
		row := queueRow{Kind: k.Kind, Available: k.ByState["available"], Scheduled: k.ByState["scheduled"],
			Retryable: k.ByState["retryable"], Running: k.ByState["running"]}
		if k.OldestDue > 0 {
			row.Oldest = duration(k.OldestDue)
		}
		v.Queue = append(v.Queue, row)
	}
	v.Failed = h.runRows(now, v.Base, ops.Failed)
	v.PreviewsAlive = ops.PreviewsAlive
	if h.opts.Budget != nil {
		v.HasBudget = true
		for _, b := range h.opts.Budget() {
			row := budgetRow{BudgetRow: b, Updated: ago(now, b.At)}
			if b.Limit > 0 {
				row.Used = 100 - b.Remaining*100/b.Limit
				row.Low = b.Remaining*10 < b.Limit // under 10% left
			}
			v.Budget = append(v.Budget, row)
		}
	}
	v.River = h.opts.River != nil && h.opts.Login != nil
	h.render(w, r, "overview.html", v)
}
