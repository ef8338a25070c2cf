package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/gitref"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Actions on a run's page: POST /runs/{id}/actions/{action} asks for what
// the PR commands and check-run buttons do (redeploy, reset the database,
// destroy a preview, re-run a test stage, re-run or roll back production).
//
// The page checks only what it can check alone: someone is signed in (no
// identity, no action), they may read the repository (else 404, as for
// the page), the form is theirs (CSRF, else 403), and the action is one
// this run offers (else 400). Whether they may steer the bot is decided by
// the job that carries the action out, with exactly the PR commands' rules
// (pipeline/page_actions.go): the buttons show to every signed-in reader,
// and a refusal shows on the page. The answer is a redirect back to the
// run's page, which lists the run's recent requests and their outcomes.

// Actions queues what viewers ask with the pages' buttons and tells what
// came of it; pipeline.PageActions is the bot's.
type Actions interface {
	// Request queues a and returns its id.
	Request(ctx context.Context, a intent.PageAction) (int64, error)
	// Recent returns the last n requests on run's page, newest first.
	Recent(ctx context.Context, run int64, n int) ([]state.PageAction, error)
}

// recentActions is how many requests a run's page lists.
const recentActions = 5

// actionsView is the "actions" block of a page (templates/actions.html).
type actionsView struct {
	RunID   int64
	CSRF    string
	Buttons []button
	// Stages are the test stages each with its own "Re-run" button.
	Stages []string
	// Destroy is offered apart, behind a second click.
	Destroy  *button
	Requests []state.PageAction
	// Asked is the request the viewer just made (?action=), highlighted.
	Asked int64
}

// button is one action a run's page offers.
type button struct {
	Action, Label, Title string
}

// buttonsOf lists what can be asked on d's page: the PR commands on a
// pull request's runs, a re-run on test runs, re-run and roll back on
// production runs (roll back to a deploy that succeeded).
func buttonsOf(d state.Detail) (buttons []button, stages []string, destroy *button) {
	switch {
	case d.PR > 0 && (d.Kind == "preview" || d.Kind == "teardown"):
		buttons = []button{
			{intent.PageRedeploy, "Redeploy", "Build and deploy the pull request's head again (/redeploy)"},
			{intent.PageResetDB, "Redeploy with a fresh database", "Reset the preview's database branch from its parent, then redeploy (/redeploy --reset-db)"},
		}
		if gitref.IsSHA(d.HeadSHA) {
			buttons = append(buttons, button{intent.PageDeploy, "Deploy " + d.HeadSHA[:7],
				"Deploy this commit, approving it if the pull request comes from a fork (/deploy " + d.HeadSHA + ")"})
		}
		destroy = &button{intent.PageDestroy, "Destroy the preview", "Delete the preview's Workers, hostnames and database branch (/destroy)"}
	case d.Kind == "test":
		buttons = []button{{intent.PageRerun, "Re-run all stages", "Run the test stages again at this commit"}}
		for _, s := range d.Steps {
			if !strings.HasPrefix(s.Name, "setup:") {
				stages = append(stages, s.Name)
			}
		}
	case d.Kind == "production":
		buttons = []button{{intent.PageRerun, "Re-run", "Deploy this commit to production again"}}
		if d.Status == "succeeded" && d.CheckRunID != 0 {
			buttons = append(buttons, button{intent.PageRollback, "Roll back to this", "Put the Worker versions this deploy left live back"})
		}
	}
	return buttons, stages, destroy
}

// offers reports whether d's page offers action (for stage, on a test run).
func offers(d state.Detail, action, stage string) bool {
	buttons, stages, destroy := buttonsOf(d)
	if destroy != nil && action == destroy.Action {
		return stage == ""
	}
	if !slices.ContainsFunc(buttons, func(b button) bool { return b.Action == action }) {
		return false
	}
	return stage == "" || slices.Contains(stages, stage)
}

// runActions is the page's "actions" block: buttons for a signed-in viewer,
// and the run's recent requests for everyone who reads it.
func (h *Handler) runActions(ctx context.Context, d state.Detail, asked int64) (*actionsView, error) {
	if h.opts.Actions == nil {
		return nil, nil
	}
	v := &actionsView{RunID: d.ID, Asked: asked}
	if u := Viewer(ctx); u != nil {
		v.CSRF = u.CSRF
		v.Buttons, v.Stages, v.Destroy = buttonsOf(d)
	}
	var err error
	v.Requests, err = h.opts.Actions.Recent(ctx, d.ID, recentActions)
	return v, err
}

// runAction answers POST /runs/{id}/actions/{action}.
func (h *Handler) runAction(w http.ResponseWriter, r *http.Request) {
	if h.opts.Actions == nil {
		http.NotFound(w, r)
		return
	}
	u := Viewer(r.Context())
	if u == nil || h.opts.Login == nil {
		http.Error(w, "actions need a GitHub sign-in, and these pages have none: the bot's github.app.client_id is not set", http.StatusForbidden)
		return
	}
	d, ok := h.run(w, r)
	if !ok {
		return
	}
	if err := h.opts.Login.CheckCSRF(r, u); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	action, stage := r.PathValue("action"), r.PostFormValue("stage")
	if !offers(d, action, stage) {
		what := fmt.Sprintf("%q", action)
		if stage != "" {
			what += fmt.Sprintf(" of stage %q", stage)
		}
		http.Error(w, fmt.Sprintf("run %d (%s) offers no action %s", d.ID, d.Kind, what), http.StatusBadRequest)
		return
	}
	owner, name, _ := strings.Cut(d.Repo, "/")
	id, err := h.opts.Actions.Request(r.Context(), intent.PageAction{
		Meta:  intent.Meta{Action: action, Sender: u.Login, Repo: intent.Repo{Owner: owner, Name: name}},
		RunID: d.ID, PR: d.PR, Stage: stage,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	zerolog.Ctx(r.Context()).Info().Str("user", u.Login).Str("repo", d.Repo).Int64("run_id", d.ID).Str("action", action).
		Int64("page_action", id).Msg("web: action requested")
	http.Redirect(w, r, fmt.Sprintf("/runs/%d?action=%d#action-%d", d.ID, id, id), http.StatusSeeOther)
}
