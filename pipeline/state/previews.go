package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Previews is the previews table: one row per pull request the bot was
// asked about, with its preview's state and everything it created.
type Previews struct{ pool *pgxpool.Pool }

// Preview is the stored state of a pull request's preview.
type Preview struct {
	Repo         string
	PR           int
	State        string // templates' states: pending, building, ready, failed, destroyed, …
	DeployedSHA  string
	CommentID    int64
	DeploymentID int64
	ApprovedSHA  string
	Resources    Resources
	// Known: the bot had a row for this PR before this load (it has been
	// asked to build it before), so the PR deserves a status comment even
	// if nothing was built.
	Known bool
}

// Resources is everything a preview created, recorded before it is
// created so that teardown finds it even after a crash or a change of the
// pipeline file. Stored as JSON: the sweeper and bench/sweep read it too.
type Resources struct {
	Project   string           `json:"project,omitempty"`
	Branch    string           `json:"branch,omitempty"`
	AccountID string           `json:"account_id,omitempty"`
	ZoneID    string           `json:"zone_id,omitempty"`
	Mode      string           `json:"mode,omitempty"`
	DNSTarget string           `json:"dns_target,omitempty"`
	Workers   []DeployedWorker `json:"workers,omitempty"`
	// OwnPassword is the ID of the branch whose role got its own password
	// (neon ResetConnectionURIs). A branch with another ID — recreated
	// since — still has its parent's and is reset again.
	OwnPassword string `json:"own_password,omitempty"`
}

// DeployedWorker is one Worker of a preview.
type DeployedWorker struct {
	Name     string `json:"name"`
	Script   string `json:"script"`
	Hostname string `json:"hostname,omitempty"`
	// Commit is the commit the Worker's live version was built from ("":
	// not known to be live), from which a path filter compares.
	Commit string `json:"commit,omitempty"`
}

// Empty reports whether nothing was created.
func (r Resources) Empty() bool { return r.Branch == "" && len(r.Workers) == 0 }

// Merge adds what plan will create to what exists, keeping old scripts a
// renamed worker left behind.
func (r Resources) Merge(plan Resources) Resources {
	out := plan
	if plan.Project == r.Project && plan.Branch == r.Branch {
		out.OwnPassword = r.OwnPassword
	}
	out.Workers = slices.Clone(plan.Workers)
	for _, w := range r.Workers {
		found := false
		for i, p := range out.Workers {
			if p.Script == w.Script {
				found, out.Workers[i].Commit = true, w.Commit
			}
		}
		if !found {
			out.Workers = append(out.Workers, w)
		}
	}
	return out
}

// Load returns pull request pr's preview, creating its row on first use.
func (p Previews) Load(ctx context.Context, repo string, pr int, installationID int64) (*Preview, error) {
	st := &Preview{Repo: repo, PR: pr}
	var raw []byte
	err := p.pool.QueryRow(ctx, `
		INSERT INTO previews (repo, pr_number, installation_id) VALUES ($1, $2, $3)
		ON CONFLICT (repo, pr_number) DO UPDATE SET installation_id = EXCLUDED.installation_id
		RETURNING state, deployed_sha, comment_id, deployment_id, approved_sha, resources, xmax <> 0`,
		repo, pr, installationID).Scan(&st.State, &st.DeployedSHA, &st.CommentID, &st.DeploymentID, &st.ApprovedSHA, &raw, &st.Known)
	if err != nil {
		return nil, fmt.Errorf("load preview of %s#%d: %w", repo, pr, err)
	}
	if err := json.Unmarshal(raw, &st.Resources); err != nil {
		return nil, fmt.Errorf("decode resources of %s#%d: %w", repo, pr, err)
	}
	return st, nil
}

// Save stores st. It outlives ctx's cancellation: what a cancelled run
// created must still be remembered.
func (p Previews) Save(ctx context.Context, st *Preview) error {
	raw, err := json.Marshal(st.Resources)
	if err != nil {
		return err
	}
	_, err = p.pool.Exec(context.WithoutCancel(ctx), `
		UPDATE previews SET state = $3, deployed_sha = $4, comment_id = $5, deployment_id = $6,
			approved_sha = $7, resources = $8, updated_at = now()
		WHERE repo = $1 AND pr_number = $2`,
		st.Repo, st.PR, st.State, st.DeployedSHA, st.CommentID, st.DeploymentID, st.ApprovedSHA, raw)
	if err != nil {
		return fmt.Errorf("save preview of %s#%d: %w", st.Repo, st.PR, err)
	}
	return nil
}

// CommentID returns the id of pull request pr's status comment as
// recorded (0: none recorded).
func (p Previews) CommentID(ctx context.Context, repo string, pr int) (int64, error) {
	var id int64
	err := p.pool.QueryRow(ctx, `SELECT comment_id FROM previews WHERE repo = $1 AND pr_number = $2`, repo, pr).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the status comment's id of %s#%d: %w", repo, pr, err)
	}
	return id, nil
}

// Held is a preview the sweeper looks at: one that holds resources or is
// in a state other than destroyed or pending.
type Held struct {
	Repo           string
	PR             int
	InstallationID int64
	State          string
	Resources      Resources
	Updated        time.Time
}

// Held lists the previews that hold something.
func (p Previews) Held(ctx context.Context) ([]Held, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT repo, pr_number, installation_id, state, resources, updated_at FROM previews
		WHERE resources <> '{}'::jsonb OR state NOT IN ('destroyed', 'pending')`)
	if err != nil {
		return nil, fmt.Errorf("list previews: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Held, error) {
		var h Held
		var raw []byte
		if err := r.Scan(&h.Repo, &h.PR, &h.InstallationID, &h.State, &raw, &h.Updated); err != nil {
			return h, err
		}
		if err := json.Unmarshal(raw, &h.Resources); err != nil {
			return h, fmt.Errorf("decode resources of %s#%d: %w", h.Repo, h.PR, err)
		}
		return h, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list previews: %w", err)
	}
	return out, nil
}

// Alive counts the previews that hold cloud resources now: a database
// branch or Workers recorded and not yet torn down.
func (p Previews) Alive(ctx context.Context) (int, error) {
	var n int
	err := p.pool.QueryRow(ctx, `
		SELECT count(*) FROM previews
		WHERE resources ? 'branch' OR jsonb_array_length(COALESCE(resources->'workers', '[]'::jsonb)) > 0`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count previews alive: %w", err)
	}
	return n, nil
}

// Holds reports whether pull request pr's preview holds something. When
// the database cannot say, it answers yes: the sweeper must never delete
// what a preview still uses.
func (p Previews) Holds(ctx context.Context, repo string, pr int) bool {
	var yes bool
	err := p.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM previews WHERE repo = $1 AND pr_number = $2
		  AND (resources <> '{}'::jsonb OR state NOT IN ('destroyed', 'pending')))`, repo, pr).Scan(&yes)
	return err != nil || yes
}

// Projects returns the Neon projects previews of each repository used:
// pairs of repository and project.
func (p Previews) Projects(ctx context.Context) ([][2]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT DISTINCT repo, resources->>'project' FROM previews WHERE resources ? 'project'`)
	if err != nil {
		return nil, fmt.Errorf("list preview projects: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var pair [2]string
		return pair, r.Scan(&pair[0], &pair[1])
	})
}

// Find returns the stored state of pull request pr's preview without
// recording anything (found false when the bot never saw the PR).
func (p Previews) Find(ctx context.Context, repo string, pr int) (Preview, bool, error) {
	out := Preview{Repo: repo, PR: pr, Known: true}
	var raw []byte
	err := p.pool.QueryRow(ctx, `
		SELECT state, deployed_sha, resources FROM previews WHERE repo = $1 AND pr_number = $2`, repo, pr).
		Scan(&out.State, &out.DeployedSHA, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Preview{}, false, nil
	}
	if err != nil {
		return Preview{}, false, fmt.Errorf("read the preview of %s#%d: %w", repo, pr, err)
	}
	if err := json.Unmarshal(raw, &out.Resources); err != nil {
		return Preview{}, false, fmt.Errorf("read the resources of %s#%d: %w", repo, pr, err)
	}
	return out, true, nil
}
