package github

import (
	"context"
	"fmt"
	"net/http"
	"time"

	gh "github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/gitref"
	"github.com/revelations-studio/deploybot/internal/retry"
)

// GitHub's limits on check runs. Requests beyond them are rejected with 422,
// which would leave a run without its conclusion, so they are applied here.
const (
	MaxOutputBytes         = 65535 // output.summary and output.text
	MaxAnnotationsPerCall  = 50
	MaxActions             = 3
	MaxActionLabel         = 20 // characters
	MaxActionIdentifier    = 20 // characters
	MaxActionDescription   = 40 // characters
	maxDeploymentStatusLen = 140
)

// Check run statuses and conclusions.
const (
	StatusQueued     = "queued"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"

	ConclusionSuccess        = "success"
	ConclusionFailure        = "failure"
	ConclusionNeutral        = "neutral"
	ConclusionCancelled      = "cancelled"
	ConclusionSkipped        = "skipped"
	ConclusionTimedOut       = "timed_out"
	ConclusionActionRequired = "action_required"
)

// CheckRun is a check run to create, or the fields to change on one.
type CheckRun struct {
	Name    string // required: GitHub's update always sets it
	HeadSHA string // create only
	// Status is StatusQueued, StatusInProgress or StatusCompleted; empty
	// leaves it as it is (queued on create). A Conclusion implies completed.
	Status      string
	Conclusion  string
	DetailsURL  string
	ExternalID  string
	StartedAt   time.Time
	CompletedAt time.Time
	Output      *CheckOutput
	// Actions are buttons shown on the run; clicking one sends a
	// check_run requested_action webhook carrying its Identifier.
	Actions []CheckAction
}

// CheckOutput is the text shown on a check run. Summary and Text longer
// than MaxOutputBytes are cut on a UTF-8 boundary and end with a note.
// More than MaxAnnotationsPerCall annotations are sent in several calls.
type CheckOutput struct {
	Title       string
	Summary     string
	Text        string
	Annotations []Annotation
}

// Annotation points at lines of a file.
type Annotation struct {
	Path      string
	StartLine int
	EndLine   int
	Level     string // "notice", "warning" or "failure"
	Message   string
	Title     string
}

// CheckAction is a button on a check run. Label and Description are
// shortened to GitHub's limits; an Identifier longer than 20 characters is
// an error, as shortening it would change what the button does.
type CheckAction struct {
	Label       string
	Description string
	Identifier  string
}

// CheckRunRef is a check run the bot created: its id, and its page on
// GitHub (html_url, right on GitHub Enterprise Server too) for links.
type CheckRunRef struct {
	ID  int64
	URL string
}

// CreateCheckRun creates a check run and returns its ID.
func (r *Reporter) CreateCheckRun(ctx context.Context, run CheckRun) (CheckRunRef, error) {
	op := fmt.Sprintf("create check run %q on %.12s", run.Name, run.HeadSHA)
	actions, err := checkActions(run.Actions)
	if err != nil {
		return CheckRunRef{}, fmt.Errorf("github: %s in %s: %w", op, r.FullName(), err)
	}
	out, rest := checkOutput(run.Output)
	opts := gh.CreateCheckRunOptions{
		Name:        run.Name,
		HeadSHA:     run.HeadSHA,
		DetailsURL:  optString(run.DetailsURL),
		ExternalID:  optString(run.ExternalID),
		Status:      optString(statusFor(run)),
		Conclusion:  optString(run.Conclusion),
		StartedAt:   optTime(run.StartedAt),
		CompletedAt: optTime(run.CompletedAt),
		Output:      out,
		Actions:     actions,
	}
	cr, resp, err := r.client.Checks.CreateCheckRun(ctx, r.owner, r.repo, opts)
	if err != nil && run.ExternalID != "" && mayHaveActed(resp, err) {
		// GitHub may have created the run and the answer got lost. Found
		// again by its external id, it is the caller's to conclude; else
		// it would stay "in progress" with nobody to end it.
		if found, ferr := r.checkRunByExternalID(ctx, run.HeadSHA, run.Name, run.ExternalID); ferr == nil && found != nil {
			cr, err = found, nil
		}
	}
	if err != nil {
		return CheckRunRef{}, r.wrap(op, resp, err)
	}
	ref := CheckRunRef{ID: cr.GetID(), URL: cr.GetHTMLURL()}
	if err := r.sendAnnotations(ctx, cr.GetID(), run.Name, out, rest); err != nil {
		return ref, err
	}
	return ref, nil
}

// UpdateCheckRun changes check run id. Name must be the run's name: GitHub's
// update always carries a name (go-github cannot leave it out), so an empty
// one would rename the run to "". HeadSHA is ignored.
func (r *Reporter) UpdateCheckRun(ctx context.Context, id int64, run CheckRun) error {
	op := fmt.Sprintf("update check run %d", id)
	if run.Name == "" {
		return fmt.Errorf("github: %s in %s: the check run's name is required", op, r.FullName())
	}
	actions, err := checkActions(run.Actions)
	if err != nil {
		return fmt.Errorf("github: %s in %s: %w", op, r.FullName(), err)
	}
	out, rest := checkOutput(run.Output)
	opts := gh.UpdateCheckRunOptions{
		Name:        run.Name,
		DetailsURL:  optString(run.DetailsURL),
		ExternalID:  optString(run.ExternalID),
		Status:      optString(statusFor(run)),
		Conclusion:  optString(run.Conclusion),
		CompletedAt: optTime(run.CompletedAt),
		Output:      out,
		Actions:     actions,
	}
	_, resp, err := r.client.Checks.UpdateCheckRun(ctx, r.owner, r.repo, id, opts)
	if err != nil {
		return r.wrap(op, resp, err)
	}
	return r.sendAnnotations(ctx, id, run.Name, out, rest)
}

// FindCheckRun returns the newest check run named name on commit sha, so
// that a retried "create" can reuse the run an earlier attempt made.
func (r *Reporter) FindCheckRun(ctx context.Context, sha, name string) (id int64, found bool, err error) {
	if !gitref.IsSHA(sha) {
		return 0, false, fmt.Errorf("github: list check runs %q in %s: %q is not a commit SHA", name, r.FullName(), sha)
	}
	opts := &gh.ListCheckRunsOptions{CheckName: gh.String(name), Filter: gh.String("latest")}
	res, resp, err := r.client.Checks.ListCheckRunsForRef(ctx, r.owner, r.repo, sha, opts)
	if err != nil {
		return 0, false, r.wrap(fmt.Sprintf("list check runs %q on %.12s", name, sha), resp, err)
	}
	var newest *gh.CheckRun
	for _, cr := range res.CheckRuns {
		if cr.GetName() == name && (newest == nil || cr.GetID() > newest.GetID()) {
			newest = cr
		}
	}
	if newest == nil {
		return 0, false, nil
	}
	return newest.GetID(), true, nil
}

// CheckRunByExternalID finds the check run named name on sha that the bot
// created with externalID (its run's id): how a run whose process died
// between GitHub creating the check run and the bot recording its id finds
// it again, to conclude it.
func (r *Reporter) CheckRunByExternalID(ctx context.Context, sha, name, externalID string) (id int64, found bool, err error) {
	cr, err := r.checkRunByExternalID(ctx, sha, name, externalID)
	if err != nil || cr == nil {
		return 0, false, err
	}
	return cr.GetID(), true, nil
}

// checkRunByExternalID is CheckRunByExternalID with the whole check run
// (nil when there is none).
func (r *Reporter) checkRunByExternalID(ctx context.Context, sha, name, externalID string) (*gh.CheckRun, error) {
	if !gitref.IsSHA(sha) {
		return nil, fmt.Errorf("github: list check runs %q in %s: %q is not a commit SHA", name, r.FullName(), sha)
	}
	opts := &gh.ListCheckRunsOptions{CheckName: gh.String(name), Filter: gh.String("all"), ListOptions: gh.ListOptions{PerPage: 100}}
	res, resp, err := r.client.Checks.ListCheckRunsForRef(ctx, r.owner, r.repo, sha, opts)
	if err != nil {
		return nil, r.wrap(fmt.Sprintf("list check runs %q on %.12s", name, sha), resp, err)
	}
	for _, cr := range res.CheckRuns {
		if cr.GetName() == name && cr.GetExternalID() == externalID {
			return cr, nil
		}
	}
	return nil, nil
}

// mayHaveActed reports whether a failed request may still have been carried
// out by GitHub: an answer lost to a dropped connection or a gateway error.
// 503 and 4xx mean it was not.
func mayHaveActed(resp *gh.Response, err error) bool {
	if resp == nil || resp.Response == nil {
		return retry.TransportError(err)
	}
	s := resp.StatusCode
	return s >= 500 && s != http.StatusServiceUnavailable
}

// sendAnnotations sends annotations beyond the first call's 50 in further
// updates; GitHub appends them.
func (r *Reporter) sendAnnotations(ctx context.Context, id int64, name string, first *gh.CheckRunOutput, rest []*gh.CheckRunAnnotation) error {
	for len(rest) > 0 {
		n := min(len(rest), MaxAnnotationsPerCall)
		out := &gh.CheckRunOutput{Title: first.Title, Summary: first.Summary, Annotations: rest[:n]}
		rest = rest[n:]
		_, resp, err := r.client.Checks.UpdateCheckRun(ctx, r.owner, r.repo, id, gh.UpdateCheckRunOptions{Name: name, Output: out})
		if err != nil {
			return r.wrap(fmt.Sprintf("add annotations to check run %d", id), resp, err)
		}
	}
	return nil
}

func statusFor(run CheckRun) string {
	if run.Conclusion != "" {
		return StatusCompleted
	}
	return run.Status
}

// checkOutput converts o, applying GitHub's limits; annotations beyond the
// first call's share are returned separately.
func checkOutput(o *CheckOutput) (*gh.CheckRunOutput, []*gh.CheckRunAnnotation) {
	if o == nil {
		return nil, nil
	}
	out := &gh.CheckRunOutput{
		// title and summary are required whenever output is sent.
		Title:   gh.String(o.Title),
		Summary: gh.String(TruncateMarkdown(o.Summary, MaxOutputBytes)),
	}
	if o.Text != "" {
		out.Text = gh.String(TruncateMarkdown(o.Text, MaxOutputBytes))
	}
	var all []*gh.CheckRunAnnotation
	for _, a := range o.Annotations {
		all = append(all, &gh.CheckRunAnnotation{
			Path:            gh.String(a.Path),
			StartLine:       gh.Int(a.StartLine),
			EndLine:         gh.Int(max(a.EndLine, a.StartLine)),
			AnnotationLevel: gh.String(a.Level),
			Message:         gh.String(a.Message),
			Title:           optString(a.Title),
		})
	}
	n := min(len(all), MaxAnnotationsPerCall)
	out.Annotations = all[:n]
	return out, all[n:]
}

func checkActions(actions []CheckAction) ([]*gh.CheckRunAction, error) {
	if len(actions) > MaxActions {
		return nil, fmt.Errorf("%d actions, GitHub allows %d", len(actions), MaxActions)
	}
	var out []*gh.CheckRunAction
	for _, a := range actions {
		if a.Identifier == "" || runeCount(a.Identifier) > MaxActionIdentifier {
			return nil, fmt.Errorf("action identifier %q must be 1 to %d characters", a.Identifier, MaxActionIdentifier)
		}
		out = append(out, &gh.CheckRunAction{
			Label:       truncateRunes(a.Label, MaxActionLabel),
			Description: truncateRunes(a.Description, MaxActionDescription),
			Identifier:  a.Identifier,
		})
	}
	return out, nil
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t time.Time) *gh.Timestamp {
	if t.IsZero() {
		return nil
	}
	return &gh.Timestamp{Time: t.UTC().Truncate(time.Second)}
}
