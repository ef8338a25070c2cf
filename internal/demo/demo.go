// Package demo walks a sample pull request through its life against a
// running bot, the way GitHub would: signed webhook deliveries over HTTP,
// then a look at what the bot stored and queued.
//
// It grows with the bot: today the bot stores each delivery and works its
// intent; the preview pipelines will turn the same walk into real preview
// environments in the sandbox.
package demo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Options says where the bot is and how to talk to it.
type Options struct {
	// HookURL is the bot's webhook endpoint.
	HookURL string
	// Secret signs the deliveries.
	Secret string
	// Pool reads back what the bot stored.
	Pool *pgxpool.Pool
	Out  io.Writer
}

// step is one delivery of the walk and what the bot should make of it.
type step struct {
	title   string
	event   string
	id      string
	payload map[string]any
	want    string // intent kind, or "duplicate"
}

// Run delivers the walk and checks the outcome; an error means the bot did
// not do what it should.
func Run(ctx context.Context, opts Options) error {
	repo := map[string]any{
		"id": 4242, "name": "codex", "full_name": "revelations-studio/codex",
		"owner":          map[string]any{"login": "revelations-studio", "type": "Organization"},
		"default_branch": "main",
	}
	inst := map[string]any{"id": 7, "account": map[string]any{"login": "revelations-studio"}}
	dev := map[string]any{"login": "ada", "type": "User"}
	sha1, sha2 := fakeSHA("first commit"), fakeSHA("second commit")
	pr := func(action, head string, extra map[string]any) map[string]any {
		p := map[string]any{
			"number": 1, "draft": false, "merged": false, "user": dev,
			"head": map[string]any{"ref": "feature/login", "sha": head, "repo": repo},
			"base": map[string]any{"ref": "main", "sha": fakeSHA("main"), "repo": repo},
		}
		for k, v := range extra {
			p[k] = v
		}
		return map[string]any{"action": action, "number": 1, "pull_request": p, "repository": repo, "installation": inst, "sender": dev}
	}
	steps := []step{
		{"PR #1 opened", "pull_request", "demo-1", pr("opened", sha1, nil), "preview_requested"},
		{"GitHub redelivers it", "pull_request", "demo-1", pr("opened", sha1, nil), "duplicate"},
		{"a new commit is pushed to the PR", "pull_request", "demo-2", pr("synchronize", sha2, nil), "preview_requested"},
		{"a maintainer comments /redeploy", "issue_comment", "demo-3", map[string]any{
			"action": "created", "repository": repo, "installation": inst, "sender": dev,
			"issue":   map[string]any{"number": 1, "pull_request": map[string]any{"url": "…"}},
			"comment": map[string]any{"id": 1001, "body": "/redeploy", "user": dev, "author_association": "MEMBER"},
		}, "comment_command"},
		{"PR #1 merged", "pull_request", "demo-4", pr("closed", sha2, map[string]any{"merged": true}), "preview_closed"},
		{"the merge lands on main", "push", "demo-5", map[string]any{
			"ref": "refs/heads/main", "before": fakeSHA("main"), "after": fakeSHA("merge"),
			"repository": repo, "installation": inst, "sender": dev,
			"head_commit": map[string]any{"message": "Merge pull request #1 from revelations-studio/feature/login"},
		}, "production_push"},
	}

	fmt.Fprintf(opts.Out, "Walking PR #1 of revelations-studio/codex through its life (%s)\n\n", opts.HookURL)
	var queued int
	for i, s := range steps {
		status, body, err := deliver(ctx, opts, s)
		if err != nil {
			return err
		}
		fmt.Fprintf(opts.Out, "%d. %-36s → %d %s\n", i+1, s.title, status, strings.TrimSpace(body))
		var resp struct {
			Intent    string `json:"intent"`
			Duplicate bool   `json:"duplicate"`
		}
		_ = json.Unmarshal([]byte(body), &resp)
		switch {
		case status != http.StatusOK:
			return fmt.Errorf("step %d (%s): the bot answered %d", i+1, s.title, status)
		case s.want == "duplicate" && !resp.Duplicate:
			return fmt.Errorf("step %d (%s): a redelivery was queued again", i+1, s.title)
		case s.want != "duplicate" && (resp.Intent != s.want || resp.Duplicate):
			return fmt.Errorf("step %d (%s): got intent %q, want %q", i+1, s.title, resp.Intent, s.want)
		}
		if s.want != "duplicate" {
			queued++
		}
	}

	if err := waitWorked(ctx, opts.Pool, queued); err != nil {
		return err
	}
	return report(ctx, opts)
}

func deliver(ctx context.Context, opts Options, s step) (int, string, error) {
	body, err := json.Marshal(s.payload)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, opts.HookURL, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	mac := hmac.New(sha256.New, []byte(opts.Secret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", s.event)
	req.Header.Set("X-GitHub-Delivery", s.id)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("deliver %s: %w", s.title, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), nil
}

// waitWorked polls until the job workers have recorded n intents. The demo
// watches the bot from outside, as an operator would, so it polls.
func waitWorked(ctx context.Context, pool *pgxpool.Pool, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		var worked int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM intents`).Scan(&worked); err == nil && worked >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the job queue did not work all %d intents in time", n)
		case <-time.After(delay):
		}
	}
}

func report(ctx context.Context, opts Options) error {
	rows, err := opts.Pool.Query(ctx, `
		SELECT d.delivery_id, d.event, d.action, d.intent_kind, d.job_id, i.attempt
		FROM deliveries d JOIN intents i USING (delivery_id)
		ORDER BY d.received_at`)
	if err != nil {
		return err
	}
	defer rows.Close()
	fmt.Fprintln(opts.Out, "\nStored deliveries and the jobs that worked them:")
	w := tabwriter.NewWriter(opts.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  DELIVERY\tEVENT\tINTENT\tJOB\tATTEMPT")
	for rows.Next() {
		var id, event, action, kind string
		var job int64
		var attempt int
		if err := rows.Scan(&id, &event, &action, &kind, &job, &attempt); err != nil {
			return err
		}
		if action != "" {
			event += "." + action
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%d\n", id, event, kind, job, attempt)
	}
	w.Flush()
	return rows.Err()
}

func fakeSHA(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
