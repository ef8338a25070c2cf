package github

import (
	"context"
	"encoding/json"
	"fmt"

	gh "github.com/google/go-github/v66/github"
)

// Deployment states.
const (
	DeployQueued     = "queued"
	DeployInProgress = "in_progress"
	DeployPending    = "pending"
	DeploySuccess    = "success"
	DeployFailure    = "failure"
	DeployError      = "error"
	DeployInactive   = "inactive"
)

// Deployment is a GitHub deployment to create.
type Deployment struct {
	// Ref is what is deployed: a commit SHA (preferred: it is exact), a
	// branch or a tag.
	Ref         string
	Environment string // e.g. "preview" or "production"
	Description string
	// Transient: the environment goes away later (previews). Production:
	// it is the one users use.
	Transient  bool
	Production bool
	// PR is the pull request deployed, 0 for none. It is stored in the
	// deployment's payload so that the pull request's older deployments can
	// be found again (DeactivatePullRequestDeployments).
	PR int
}

// deploymentPayload is what the bot stores in a deployment's payload.
type deploymentPayload struct {
	Deploybot struct {
		PR int `json:"pr,omitempty"`
	} `json:"deploybot"`
}

// CreateDeployment creates a deployment and returns its ID. GitHub's
// safety nets for humans are switched off: auto_merge would merge the
// default branch into the ref, and required_contexts (all checks green)
// would refuse while the bot's own check run is still in progress.
func (r *Reporter) CreateDeployment(ctx context.Context, d Deployment) (int64, error) {
	var payload deploymentPayload
	payload.Deploybot.PR = d.PR
	req := &gh.DeploymentRequest{
		Ref:                   gh.String(d.Ref),
		Task:                  gh.String("deploy"),
		AutoMerge:             gh.Bool(false),
		RequiredContexts:      &[]string{},
		Payload:               payload,
		Environment:           gh.String(d.Environment),
		Description:           gh.String(d.Description),
		TransientEnvironment:  gh.Bool(d.Transient),
		ProductionEnvironment: gh.Bool(d.Production),
	}
	dep, resp, err := r.client.Repositories.CreateDeployment(ctx, r.owner, r.repo, req)
	if err != nil {
		return 0, r.wrap(fmt.Sprintf("create deployment of %.12s to %q", d.Ref, d.Environment), resp, err)
	}
	return dep.GetID(), nil
}

// DeploymentStatus is a new status of a deployment.
type DeploymentStatus struct {
	State          string // DeploySuccess, DeployInProgress, …
	EnvironmentURL string // the "View deployment" link
	LogURL         string
	Description    string // cut to 140 characters
	// AutoInactive lets GitHub mark the environment's earlier successful
	// deployments inactive on success. Off by default: previews of several
	// pull requests share one environment, and one pull request's success
	// must not deactivate another's (see DeactivatePullRequestDeployments).
	AutoInactive bool
}

// SetDeploymentStatus adds a status to deployment id.
func (r *Reporter) SetDeploymentStatus(ctx context.Context, id int64, s DeploymentStatus) error {
	req := &gh.DeploymentStatusRequest{
		State:          gh.String(s.State),
		LogURL:         optString(s.LogURL),
		Description:    optString(truncateRunes(s.Description, maxDeploymentStatusLen)),
		EnvironmentURL: optString(s.EnvironmentURL),
		AutoInactive:   gh.Bool(s.AutoInactive),
	}
	_, resp, err := r.client.Repositories.CreateDeploymentStatus(ctx, r.owner, r.repo, id, req)
	if err != nil {
		return r.wrap(fmt.Sprintf("set status %q on deployment %d", s.State, id), resp, err)
	}
	return nil
}

// maxDeactivationPages bounds the listing DeactivatePullRequestDeployments
// does when it knows no recorded deployment to start from: every pull
// request's previews share one environment, so its history grows with the
// repository's, and reading all of it on every push would cost one request
// per hundred deployments the repository ever made.
const maxDeactivationPages = 3

// DeactivatePullRequestDeployments marks pull request pr's deployments to
// environment inactive, except keep (0: none), so that the pull request
// shows only its current preview, and returns how many it changed.
//
// since is the pull request's deployment the bot last recorded as current
// (0: none known). The run that recorded it deactivated everything of the
// pull request older than it, so only since itself (one write, no lookup)
// and deployments newer than it need looking at: those are left by runs
// that died between creating a deployment and recording it. GitHub lists
// an environment's deployments newest first, so the listing stops at the
// first page that reaches since, and after maxDeactivationPages pages in
// any case.
func (r *Reporter) DeactivatePullRequestDeployments(ctx context.Context, environment string, pr int, keep, since int64) (int, error) {
	op := fmt.Sprintf("deactivate deployments of #%d in %q", pr, environment)
	changed := 0
	if since != 0 && since != keep {
		if err := r.SetDeploymentStatus(ctx, since, DeploymentStatus{State: DeployInactive, Description: "Superseded"}); err != nil {
			return changed, err
		}
		changed++
	}
	opts := &gh.DeploymentsListOptions{Environment: environment, ListOptions: gh.ListOptions{PerPage: 100}}
	var orphans []int64
	for pages := 1; ; pages++ {
		page, resp, err := r.client.Repositories.ListDeployments(ctx, r.owner, r.repo, opts)
		if err != nil {
			return changed, r.wrap(op, resp, err)
		}
		reached := false
		for _, d := range page {
			id := d.GetID()
			if id <= since {
				reached = true
				continue
			}
			if id != keep && payloadPR(d.Payload) == pr {
				orphans = append(orphans, id)
			}
		}
		if reached || pages >= maxDeactivationPages || resp.NextPage == 0 || resp.NextPage <= opts.Page {
			break
		}
		opts.Page = resp.NextPage
	}
	for _, id := range orphans {
		latest, resp, err := r.client.Repositories.ListDeploymentStatuses(ctx, r.owner, r.repo, id, &gh.ListOptions{PerPage: 1})
		if err != nil {
			return changed, r.wrap(op, resp, err)
		}
		if len(latest) > 0 && latest[0].GetState() == DeployInactive {
			continue
		}
		if err := r.SetDeploymentStatus(ctx, id, DeploymentStatus{State: DeployInactive, Description: "Superseded"}); err != nil {
			return changed, err
		}
		changed++
	}
	return changed, nil
}

func payloadPR(raw json.RawMessage) int {
	var p deploymentPayload
	if len(raw) == 0 || json.Unmarshal(raw, &p) != nil {
		return 0
	}
	return p.Deploybot.PR
}
