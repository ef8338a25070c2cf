package ghsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

type deployment struct {
	id                    int64
	sha, ref, task        string
	payload               any
	environment, origEnv  string
	description           string
	creator               string
	created, updated      time.Time
	transient, production bool
	statuses              []*deploymentStatus // oldest first
}

type deploymentStatus struct {
	id                                int64
	state                             string
	description                       string
	environment                       string
	targetURL, logURL, environmentURL string
	creator                           string
	created                           time.Time
}

const (
	docCreateDeployment = "https://docs.github.com/rest/deployments/deployments#create-a-deployment"
	docCreateStatus     = "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status"
)

func (s *Server) deploymentObject(rp *repo, d *deployment) map[string]any {
	url := fmt.Sprintf("%s/repos/%s/deployments/%d", s.baseURL, rp.fullName(), d.id)
	payload := d.payload
	if payload == nil {
		payload = map[string]any{}
	}
	return map[string]any{
		"url":                    url,
		"id":                     d.id,
		"node_id":                nodeID("Deployment", d.id),
		"sha":                    d.sha,
		"ref":                    d.ref,
		"task":                   d.task,
		"payload":                payload,
		"original_environment":   d.origEnv,
		"environment":            d.environment,
		"description":            d.description,
		"creator":                s.userObject(d.creator),
		"created_at":             timestamp(d.created),
		"updated_at":             timestamp(d.updated),
		"statuses_url":           url + "/statuses",
		"repository_url":         s.baseURL + "/repos/" + rp.fullName(),
		"transient_environment":  d.transient,
		"production_environment": d.production,
	}
}

func (s *Server) statusObject(rp *repo, d *deployment, st *deploymentStatus) map[string]any {
	durl := fmt.Sprintf("%s/repos/%s/deployments/%d", s.baseURL, rp.fullName(), d.id)
	return map[string]any{
		"url":             fmt.Sprintf("%s/statuses/%d", durl, st.id),
		"id":              st.id,
		"node_id":         nodeID("DeploymentStatus", st.id),
		"state":           st.state,
		"creator":         s.userObject(st.creator),
		"description":     st.description,
		"environment":     st.environment,
		"target_url":      st.targetURL,
		"created_at":      timestamp(st.created),
		"updated_at":      timestamp(st.created),
		"deployment_url":  durl,
		"repository_url":  s.baseURL + "/repos/" + rp.fullName(),
		"environment_url": st.environmentURL,
		"log_url":         st.logURL,
	}
}

func (s *Server) createDeployment(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	var in struct {
		Ref                   string    `json:"ref"`
		Task                  *string   `json:"task"`
		AutoMerge             *bool     `json:"auto_merge"`
		RequiredContexts      *[]string `json:"required_contexts"`
		Payload               any       `json:"payload"`
		Environment           *string   `json:"environment"`
		Description           *string   `json:"description"`
		TransientEnvironment  *bool     `json:"transient_environment"`
		ProductionEnvironment *bool     `json:"production_environment"`
	}
	if err := decodeBody(r, &in); err != nil {
		return fail(http.StatusBadRequest, err.Error(), docCreateDeployment)
	}
	sha, found := rp.resolve(in.Ref)
	if !found {
		return unprocessable("No ref found for: "+in.Ref, docCreateDeployment)
	}
	// auto_merge (default true) merges the default branch into the ref
	// first when the ref is behind it. GitHub then answers 202 and creates
	// no deployment; the simulator does the same without the merge.
	def := rp.branches[rp.defaultBranch]
	if (in.AutoMerge == nil || *in.AutoMerge) && !isAncestor(rp, def, sha) {
		return reply{status: http.StatusAccepted, body: map[string]any{"message": fmt.Sprintf("Auto-merged %s into %s on deployment.", rp.defaultBranch, in.Ref)}}
	}
	// required_contexts: absent means every context must be successful;
	// the bot's own running check run counts, so bots send [].
	if failed := s.failedContexts(rp, sha, in.RequiredContexts); len(failed) > 0 {
		return fail(http.StatusConflict, "Conflict: Commit status checks failed for "+in.Ref+".", docCreateDeployment,
			map[string]any{"contexts": failed, "resource": "Deployment", "field": "required_contexts", "code": "invalid"})
	}
	env := "production"
	if in.Environment != nil {
		env = *in.Environment
	}
	d := &deployment{
		id: s.newID(), sha: sha, ref: in.Ref, task: "deploy", payload: in.Payload,
		environment: env, origEnv: env, creator: s.BotLogin(),
		created: s.now(), updated: s.now(), production: env == "production",
	}
	if str, isString := in.Payload.(string); isString {
		// A string payload holds JSON; GitHub stores and returns it parsed.
		var v any
		if json.Unmarshal([]byte(str), &v) == nil {
			d.payload = v
		}
	}
	if in.Task != nil {
		d.task = *in.Task
	}
	if in.Description != nil {
		d.description = *in.Description
	}
	if in.TransientEnvironment != nil {
		d.transient = *in.TransientEnvironment
	}
	if in.ProductionEnvironment != nil {
		d.production = *in.ProductionEnvironment
	}
	rp.deployments = append(rp.deployments, d)
	return created(s.deploymentObject(rp, d))
}

// failedContexts lists the required contexts (check run names) on sha that
// are not successful: the latest run of each name counts.
func (s *Server) failedContexts(rp *repo, sha string, required *[]string) []any {
	latest := map[string]*checkRun{}
	var names []string
	for _, cr := range rp.checkRuns {
		if cr.headSHA != sha {
			continue
		}
		if latest[cr.name] == nil {
			names = append(names, cr.name)
		}
		latest[cr.name] = cr
	}
	if required != nil {
		names = *required
	}
	var failed []any
	for _, n := range names {
		cr := latest[n]
		state := "pending"
		switch {
		case cr == nil:
			state = "missing"
		case cr.status == "completed" && (cr.conclusion == "success" || cr.conclusion == "neutral" || cr.conclusion == "skipped"):
			continue
		case cr.status == "completed":
			state = "failure"
		}
		failed = append(failed, map[string]any{"context": n, "state": state})
	}
	return failed
}

func (s *Server) findDeployment(r *http.Request) (*repo, *deployment, *reply) {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return nil, nil, rep
	}
	id := intParam(r, "deployment_id")
	for _, d := range rp.deployments {
		if d.id == id {
			return rp, d, nil
		}
	}
	nf := notFound()
	return nil, nil, &nf
}

func (s *Server) getDeployment(r *http.Request) reply {
	rp, d, rep := s.findDeployment(r)
	if rep != nil {
		return *rep
	}
	return ok(s.deploymentObject(rp, d))
}

func (s *Server) listDeployments(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	q := r.URL.Query()
	var ds []*deployment
	for i := len(rp.deployments) - 1; i >= 0; i-- { // newest first
		d := rp.deployments[i]
		if (q.Get("sha") != "" && d.sha != q.Get("sha")) || (q.Get("ref") != "" && d.ref != q.Get("ref")) ||
			(q.Get("task") != "" && d.task != q.Get("task")) || (q.Get("environment") != "" && d.environment != q.Get("environment")) {
			continue
		}
		ds = append(ds, d)
	}
	pg, link := page(s, r, ds)
	objs := make([]any, 0, len(pg))
	for _, d := range pg {
		objs = append(objs, s.deploymentObject(rp, d))
	}
	return paged(objs, link)
}

func (s *Server) listDeploymentStatuses(r *http.Request) reply {
	rp, d, rep := s.findDeployment(r)
	if rep != nil {
		return *rep
	}
	sts := make([]*deploymentStatus, 0, len(d.statuses))
	for i := len(d.statuses) - 1; i >= 0; i-- { // newest first
		sts = append(sts, d.statuses[i])
	}
	pg, link := page(s, r, sts)
	objs := make([]any, 0, len(pg))
	for _, st := range pg {
		objs = append(objs, s.statusObject(rp, d, st))
	}
	return paged(objs, link)
}

func (s *Server) createDeploymentStatus(r *http.Request) reply {
	rp, d, rep := s.findDeployment(r)
	if rep != nil {
		return *rep
	}
	var in struct {
		State          string  `json:"state"`
		TargetURL      *string `json:"target_url"`
		LogURL         *string `json:"log_url"`
		Description    *string `json:"description"`
		Environment    *string `json:"environment"`
		EnvironmentURL *string `json:"environment_url"`
		AutoInactive   *bool   `json:"auto_inactive"`
	}
	if err := decodeBody(r, &in); err != nil {
		return fail(http.StatusBadRequest, err.Error(), docCreateStatus)
	}
	st := &deploymentStatus{id: s.newID(), state: in.State, creator: s.BotLogin(), created: s.now(), environment: d.environment}
	if in.Description != nil {
		if utf8.RuneCountInString(*in.Description) > 140 {
			return unprocessable("Validation Failed", docCreateStatus, map[string]any{"resource": "DeploymentStatus", "code": "custom", "field": "description",
				"message": "description is too long (maximum is 140 characters)"})
		}
		st.description = *in.Description
	}
	if in.TargetURL != nil {
		st.targetURL, st.logURL = *in.TargetURL, *in.TargetURL
	}
	if in.LogURL != nil {
		st.logURL = *in.LogURL
	}
	if in.EnvironmentURL != nil {
		st.environmentURL = *in.EnvironmentURL
	}
	if in.Environment != nil && *in.Environment != "" {
		d.environment = *in.Environment
		st.environment = *in.Environment
	}
	d.statuses = append(d.statuses, st)
	d.updated = s.now()
	if st.state == "success" && (in.AutoInactive == nil || *in.AutoInactive) {
		s.autoInactivate(rp, d)
	}
	return created(s.statusObject(rp, d, st))
}

// autoInactivate adds an inactive status to the earlier successful,
// non-transient, non-production deployments of d's environment, as GitHub
// does unless auto_inactive is false.
func (s *Server) autoInactivate(rp *repo, d *deployment) {
	for _, o := range rp.deployments {
		if o.id >= d.id || o.environment != d.environment || o.transient || o.production || len(o.statuses) == 0 {
			continue
		}
		if o.statuses[len(o.statuses)-1].state != "success" {
			continue
		}
		o.statuses = append(o.statuses, &deploymentStatus{
			id: s.newID(), state: "inactive", creator: s.BotLogin(), created: s.now(), environment: o.environment,
			environmentURL: o.statuses[len(o.statuses)-1].environmentURL,
		})
	}
}
