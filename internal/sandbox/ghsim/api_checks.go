package ghsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

type checkRun struct {
	id          int64
	name        string
	headSHA     string
	status      string
	conclusion  string
	detailsURL  string
	externalID  string
	startedAt   time.Time
	completedAt time.Time
	title       string
	summary     string
	text        *string
	annotations int
	actions     []checkAction
}

type checkAction struct {
	Label       string `json:"label"`
	Description string `json:"description"`
	Identifier  string `json:"identifier"`
}

// checkRunInput is the body of create and update; pointers tell "absent"
// from "empty".
type checkRunInput struct {
	Name        *string `json:"name"`
	HeadSHA     *string `json:"head_sha"`
	DetailsURL  *string `json:"details_url"`
	ExternalID  *string `json:"external_id"`
	Status      *string `json:"status"`
	Conclusion  *string `json:"conclusion"`
	StartedAt   *string `json:"started_at"`
	CompletedAt *string `json:"completed_at"`
	Output      *struct {
		Title       *string           `json:"title"`
		Summary     *string           `json:"summary"`
		Text        *string           `json:"text"`
		Annotations []json.RawMessage `json:"annotations"`
	} `json:"output"`
	Actions *[]checkAction `json:"actions"`
}

const (
	docCreateCheckRun = "https://docs.github.com/rest/checks/runs#create-a-check-run"
	docUpdateCheckRun = "https://docs.github.com/rest/checks/runs#update-a-check-run"
)

func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("Problems parsing JSON")
	}
	return nil
}

func (s *Server) createCheckRun(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	var in checkRunInput
	if err := decodeBody(r, &in); err != nil {
		return fail(http.StatusBadRequest, err.Error(), docCreateCheckRun)
	}
	if in.HeadSHA == nil || rp.commits[*in.HeadSHA] == nil {
		sha := ""
		if in.HeadSHA != nil {
			sha = *in.HeadSHA
		}
		return unprocessable("No commit found for SHA: "+sha, docCreateCheckRun)
	}
	if in.Name == nil || *in.Name == "" {
		return unprocessable("Invalid request.\n\n\"name\" wasn't supplied.", docCreateCheckRun)
	}
	cr := &checkRun{id: s.newID(), name: *in.Name, headSHA: *in.HeadSHA, status: "queued"}
	if rep := s.applyCheckRun(cr, &in, docCreateCheckRun); rep != nil {
		return *rep
	}
	rp.checkRuns = append(rp.checkRuns, cr)
	return created(s.checkRunObject(rp, cr))
}

func (s *Server) findCheckRun(r *http.Request) (*repo, *checkRun, *reply) {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return nil, nil, rep
	}
	id := intParam(r, "check_run_id")
	for _, cr := range rp.checkRuns {
		if cr.id == id {
			return rp, cr, nil
		}
	}
	nf := notFound()
	return nil, nil, &nf
}

func (s *Server) getCheckRun(r *http.Request) reply {
	rp, cr, rep := s.findCheckRun(r)
	if rep != nil {
		return *rep
	}
	return ok(s.checkRunObject(rp, cr))
}

func (s *Server) updateCheckRun(r *http.Request) reply {
	rp, cr, rep := s.findCheckRun(r)
	if rep != nil {
		return *rep
	}
	var in checkRunInput
	if err := decodeBody(r, &in); err != nil {
		return fail(http.StatusBadRequest, err.Error(), docUpdateCheckRun)
	}
	next := *cr
	if in.Name != nil {
		// GitHub refuses to blank a check run's name.
		if *in.Name == "" {
			return fail(http.StatusUnprocessableEntity, "Invalid request.\n\nname can't be blank", docUpdateCheckRun)
		}
		next.name = *in.Name
	}
	if rep := s.applyCheckRun(&next, &in, docUpdateCheckRun); rep != nil {
		return *rep
	}
	*cr = next
	return ok(s.checkRunObject(rp, cr))
}

// applyCheckRun applies GitHub's rules for status and conclusion, which
// the description states only in prose.
func (s *Server) applyCheckRun(cr *checkRun, in *checkRunInput, doc string) *reply {
	bad := func(msg string) *reply {
		rep := unprocessable("Invalid request.\n\n"+msg, doc)
		return &rep
	}
	if in.Conclusion != nil && *in.Conclusion == "stale" {
		return bad("Only GitHub can set a check run's conclusion to stale.")
	}
	if in.Status != nil {
		cr.status = *in.Status
		if cr.status != "completed" {
			cr.conclusion, cr.completedAt = "", time.Time{}
		}
	}
	if in.Conclusion != nil {
		// Providing conclusion sets status to completed.
		cr.conclusion = *in.Conclusion
		cr.status = "completed"
	}
	if cr.status == "completed" && cr.conclusion == "" {
		return bad(`"conclusion" wasn't supplied; it is required when status is completed.`)
	}
	if in.CompletedAt != nil && cr.conclusion == "" {
		return bad(`"conclusion" wasn't supplied; it is required with completed_at.`)
	}
	if in.StartedAt != nil {
		t, err := time.Parse(time.RFC3339, *in.StartedAt)
		if err != nil {
			return bad("started_at is not an ISO 8601 timestamp.")
		}
		cr.startedAt = t
	}
	if cr.startedAt.IsZero() {
		cr.startedAt = s.now()
	}
	if in.CompletedAt != nil {
		t, err := time.Parse(time.RFC3339, *in.CompletedAt)
		if err != nil {
			return bad("completed_at is not an ISO 8601 timestamp.")
		}
		cr.completedAt = t
	}
	if cr.status == "completed" && cr.completedAt.IsZero() {
		cr.completedAt = s.now()
	}
	if in.DetailsURL != nil {
		cr.detailsURL = *in.DetailsURL
	}
	if in.ExternalID != nil {
		cr.externalID = *in.ExternalID
	}
	if o := in.Output; o != nil {
		if o.Title != nil {
			cr.title = *o.Title
		}
		if o.Summary != nil {
			cr.summary = *o.Summary
		}
		if o.Text != nil {
			cr.text = o.Text
		}
		// Annotations accumulate over calls.
		cr.annotations += len(o.Annotations)
	}
	if in.Actions != nil {
		cr.actions = *in.Actions
	}
	return nil
}

func (s *Server) checkRunObject(rp *repo, cr *checkRun) map[string]any {
	url := fmt.Sprintf("%s/repos/%s/check-runs/%d", s.baseURL, rp.fullName(), cr.id)
	var conclusion, text any
	if cr.conclusion != "" {
		conclusion = cr.conclusion
	}
	if cr.text != nil {
		text = *cr.text
	}
	var title, summary any
	if cr.title != "" || cr.summary != "" {
		title, summary = cr.title, cr.summary
	}
	details := cr.detailsURL
	if details == "" {
		details = s.opts.WebURL + "/apps/" + s.opts.AppSlug
	}
	prs := []any{}
	for _, n := range sortedPullNumbers(rp) {
		p := rp.pulls[n]
		if p.state != "open" || p.fork || p.headSHA != cr.headSHA {
			continue // GitHub lists only same-repository pull requests
		}
		repoRef := map[string]any{"id": rp.id, "url": s.baseURL + "/repos/" + rp.fullName(), "name": rp.name}
		prs = append(prs, map[string]any{
			"url":    fmt.Sprintf("%s/repos/%s/pulls/%d", s.baseURL, rp.fullName(), p.number),
			"id":     p.id,
			"number": p.number,
			"head":   map[string]any{"ref": p.head, "sha": p.headSHA, "repo": repoRef},
			"base":   map[string]any{"ref": p.base, "sha": rp.branches[p.base], "repo": repoRef},
		})
	}
	return map[string]any{
		"id":           cr.id,
		"head_sha":     cr.headSHA,
		"node_id":      nodeID("CheckRun", cr.id),
		"external_id":  cr.externalID,
		"url":          url,
		"html_url":     fmt.Sprintf("%s/%s/runs/%d", s.opts.WebURL, rp.fullName(), cr.id),
		"details_url":  details,
		"status":       cr.status,
		"conclusion":   conclusion,
		"started_at":   nullableTime(cr.startedAt),
		"completed_at": nullableTime(cr.completedAt),
		"output": map[string]any{
			"title":             title,
			"summary":           summary,
			"text":              text,
			"annotations_count": cr.annotations,
			"annotations_url":   url + "/annotations",
		},
		"name":          cr.name,
		"check_suite":   map[string]any{"id": userID("suite:" + cr.headSHA)},
		"app":           s.appObject(),
		"pull_requests": prs,
	}
}

func sortedPullNumbers(rp *repo) []int {
	ns := make([]int, 0, len(rp.pulls))
	for n := range rp.pulls {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	return ns
}

func (s *Server) listCheckRuns(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	ref := apispec.PathParam(r.Context(), "ref")
	sha, found := rp.resolve(ref)
	if !found {
		return unprocessable("No commit found for SHA: "+ref, "https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference")
	}
	q := r.URL.Query()
	name, status, filter := q.Get("check_name"), q.Get("status"), q.Get("filter")
	var runs []*checkRun
	seen := map[string]bool{}
	// Newest first, as GitHub lists them.
	for i := len(rp.checkRuns) - 1; i >= 0; i-- {
		cr := rp.checkRuns[i]
		if cr.headSHA != sha || (name != "" && cr.name != name) || (status != "" && cr.status != status) {
			continue
		}
		if filter != "all" {
			if seen[cr.name] {
				continue
			}
			seen[cr.name] = true
		}
		runs = append(runs, cr)
	}
	pageRuns, link := page(s, r, runs)
	objs := make([]any, 0, len(pageRuns))
	for _, cr := range pageRuns {
		objs = append(objs, s.checkRunObject(rp, cr))
	}
	return paged(map[string]any{"total_count": len(runs), "check_runs": objs}, link)
}
