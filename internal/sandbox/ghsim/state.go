package ghsim

import (
	"sort"
	"strings"
)

// State is a snapshot of everything the simulator holds. Installation
// tokens appear only as counts.
type State struct {
	Repos        []RepoState        `json:"repos"`
	PullRequests []PullRequestState `json:"pull_requests"`
	CheckRuns    []CheckRunState    `json:"check_runs"`
	Comments     []CommentState     `json:"comments"`
	Reactions    []ReactionState    `json:"reactions"`
	Deployments  []DeploymentState  `json:"deployments"`
	Tokens       TokenState         `json:"installation_tokens"`
	// Installation is the App installation's state: active, suspended or
	// deleted (SetInstallationState).
	Installation InstallationState `json:"installation"`
	Deliveries   []Delivery        `json:"deliveries"`
	// Apps are the Apps registered through the manifest flow (bot setup).
	Apps []AppState `json:"apps"`
	// Requests counts requests per route template ("PATCH
	// /repos/{owner}/{repo}/issues/comments/{comment_id}") that passed fault
	// injection, valid or not; "unmatched" counts unknown routes.
	Requests map[string]int `json:"requests"`
	// Responses counts answers per route and status (304s included).
	Responses map[string]map[int]int `json:"responses"`
	// FaultsInjected counts failures injected in front of the API.
	FaultsInjected int `json:"faults_injected"`
}

// RepoState is a repository: branches, commits oldest first, roles.
type RepoState struct {
	FullName      string            `json:"full_name"`
	DefaultBranch string            `json:"default_branch"`
	Branches      map[string]string `json:"branches"`
	Commits       []CommitState     `json:"commits"`
	Permissions   map[string]string `json:"permissions"`
	// Installed: the App's installation covers the repository (SetInstalled).
	Installed bool `json:"installed"`
}

// CommitState is a commit and the files in its tree.
type CommitState struct {
	SHA     string   `json:"sha"`
	Parents []string `json:"parents"`
	Message string   `json:"message"`
	Files   []string `json:"files"`
}

// PullRequestState is a pull request.
type PullRequestState struct {
	Repo     string `json:"repo"`
	Number   int    `json:"number"`
	Title    string `json:"title"`
	State    string `json:"state"`
	Draft    bool   `json:"draft"`
	Merged   bool   `json:"merged"`
	Head     string `json:"head"`
	HeadSHA  string `json:"head_sha"`
	HeadRepo string `json:"head_repo"`
	Base     string `json:"base"`
	Author   string `json:"author"`
}

// CheckRunState is a check run.
type CheckRunState struct {
	Repo        string `json:"repo"`
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	HeadSHA     string `json:"head_sha"`
	Status      string `json:"status"`
	Conclusion  string `json:"conclusion"`
	OutputTitle string `json:"output_title"`
	// SummaryBytes and TextBytes are the lengths of the output texts.
	SummaryBytes int `json:"summary_bytes"`
	TextBytes    int `json:"text_bytes"`
	Annotations  int `json:"annotations"`
	Actions      int `json:"actions"`
	// DetailsURL is the details_url the App gave ("" for none).
	DetailsURL string `json:"details_url,omitempty"`
}

// CommentState is an issue or pull request comment.
type CommentState struct {
	Repo   string `json:"repo"`
	Issue  int    `json:"issue"`
	ID     int64  `json:"id"`
	Author string `json:"author"`
	Body   string `json:"body"`
}

// ReactionState is a reaction on a comment.
type ReactionState struct {
	Repo      string `json:"repo"`
	CommentID int64  `json:"comment_id"`
	User      string `json:"user"`
	Content   string `json:"content"`
}

// DeploymentState is a deployment with its statuses.
type DeploymentState struct {
	Repo        string                  `json:"repo"`
	ID          int64                   `json:"id"`
	Ref         string                  `json:"ref"`
	SHA         string                  `json:"sha"`
	Environment string                  `json:"environment"`
	Transient   bool                    `json:"transient"`
	Production  bool                    `json:"production"`
	Payload     any                     `json:"payload"`
	Statuses    []DeploymentStatusState `json:"statuses"` // oldest first
}

// DeploymentStatusState is one status of a deployment.
type DeploymentStatusState struct {
	ID             int64  `json:"id"`
	State          string `json:"state"`
	EnvironmentURL string `json:"environment_url"`
	LogURL         string `json:"log_url"`
	Description    string `json:"description"`
}

// TokenState counts installation tokens: issued ever, and still valid.
type TokenState struct {
	Issued int `json:"issued"`
	Live   int `json:"live"`
}

// State returns Snapshot (as the sandbox's common interface wants).
func (s *Server) State() any { return s.Snapshot() }

// Snapshot returns a copy of the simulator's state.
func (s *Server) Snapshot() State {
	requests := s.validator.Counts()
	injected := s.faults.Injected()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Requests:       requests,
		Responses:      map[string]map[int]int{},
		FaultsInjected: injected,
		Deliveries:     append([]Delivery(nil), s.deliveries...),
		Installation:   s.installation,
	}
	for route, m := range s.responses {
		cp := map[int]int{}
		for k, v := range m {
			cp[k] = v
		}
		st.Responses[route] = cp
		if strings.HasPrefix(route, "GET "+codeloadPrefix) {
			n := 0
			for _, v := range m {
				n += v
			}
			st.Requests[route] = n
		}
	}
	st.Apps = s.registeredApps()
	now := s.now()
	st.Tokens.Issued = s.tokensMade
	for _, t := range s.tokens {
		if now.Before(t.expires) {
			st.Tokens.Live++
		}
	}
	for _, rp := range s.repoOrder {
		rs := RepoState{FullName: rp.fullName(), DefaultBranch: rp.defaultBranch, Branches: map[string]string{}, Permissions: map[string]string{}, Installed: !rp.uninstalled}
		for k, v := range rp.branches {
			rs.Branches[k] = v
		}
		for k, v := range rp.perms {
			rs.Permissions[k] = v
		}
		for _, sha := range rp.commitOrder {
			c := rp.commits[sha]
			files := make([]string, 0, len(c.tree))
			for p := range c.tree {
				files = append(files, p)
			}
			sort.Strings(files)
			rs.Commits = append(rs.Commits, CommitState{SHA: sha, Parents: append([]string(nil), c.parents...), Message: c.message, Files: files})
		}
		st.Repos = append(st.Repos, rs)
		for _, n := range sortedPullNumbers(rp) {
			p := rp.pulls[n]
			st.PullRequests = append(st.PullRequests, PullRequestState{
				Repo: rp.fullName(), Number: n, Title: p.title, State: p.state, Draft: p.draft, Merged: p.merged,
				Head: p.head, HeadSHA: p.headSHA, HeadRepo: p.headRepo, Base: p.base, Author: p.author,
			})
		}
		for _, cr := range rp.checkRuns {
			text := 0
			if cr.text != nil {
				text = len(*cr.text)
			}
			st.CheckRuns = append(st.CheckRuns, CheckRunState{
				Repo: rp.fullName(), ID: cr.id, Name: cr.name, HeadSHA: cr.headSHA, Status: cr.status, Conclusion: cr.conclusion,
				OutputTitle: cr.title, SummaryBytes: len(cr.summary), TextBytes: text, Annotations: cr.annotations, Actions: len(cr.actions),
				DetailsURL: cr.detailsURL,
			})
		}
		for _, c := range rp.comments {
			st.Comments = append(st.Comments, CommentState{Repo: rp.fullName(), Issue: c.issue, ID: c.id, Author: c.author, Body: c.body})
			for _, rc := range c.reactions {
				st.Reactions = append(st.Reactions, ReactionState{Repo: rp.fullName(), CommentID: c.id, User: rc.user, Content: rc.content})
			}
		}
		for _, d := range rp.deployments {
			ds := DeploymentState{Repo: rp.fullName(), ID: d.id, Ref: d.ref, SHA: d.sha, Environment: d.environment,
				Transient: d.transient, Production: d.production, Payload: d.payload}
			for _, x := range d.statuses {
				ds.Statuses = append(ds.Statuses, DeploymentStatusState{ID: x.id, State: x.state, EnvironmentURL: x.environmentURL, LogURL: x.logURL, Description: x.description})
			}
			st.Deployments = append(st.Deployments, ds)
		}
	}
	return st
}
