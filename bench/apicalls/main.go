// Command apicalls counts the GitHub API requests the bot makes per event,
// read from the simulated GitHub's request counters, for one PR of the
// sample app (three Workers) walked through its life. GitHub's rate limits
// are per installation and hour, so calls per event is what decides how
// many PRs an installation can serve.
//
//	go run ./bench/apicalls
//
// It uses $DATABASE_URL (a superuser URL) or starts a private PostgreSQL.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "apicalls:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "deploybot-apicalls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	adminURL, botURL := os.Getenv("DATABASE_URL"), os.Getenv("DATABASE_URL")
	if adminURL == "" {
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "pg"), Ephemeral: true})
		if err != nil {
			return err
		}
		defer cluster.Stop(context.Background())
		if err := cluster.CreateDatabase(ctx, "deploybot"); err != nil {
			return err
		}
		adminURL, botURL = cluster.URL("postgres"), cluster.URL("deploybot")
	}
	s, err := demo.StartStack(ctx, demo.StackOptions{AdminURL: adminURL, DatabaseURL: botURL, DataDir: filepath.Join(dir, "bot"), Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	defer s.Close()
	gh := s.Sandbox.GitHub
	if err := gh.SetPermission(demo.Repo, "ada", "admin"); err != nil {
		return err
	}

	type row struct {
		event  string
		counts map[string]int
	}
	var rows []row
	measure := func(name string, act func() error) error {
		before := gh.Snapshot().Requests
		if err := act(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := s.WaitIdle(ctx); err != nil {
			return err
		}
		after := gh.Snapshot().Requests
		diff := map[string]int{}
		for k, v := range after {
			if d := v - before[k]; d > 0 {
				diff[k] = d
			}
		}
		rows = append(rows, row{name, diff})
		return nil
	}
	deliver := func(ev ghsim.Event, err error) error {
		if err != nil {
			return err
		}
		_, err = s.Deliver(ctx, ev)
		return err
	}
	if _, err := gh.Commit(demo.Repo, "feature/x", map[string]string{"web/src/x.js": "1\n"}, "x"); err != nil {
		return err
	}
	pr, err := gh.OpenPR(demo.Repo, "feature/x", "main", "X", false, false)
	if err != nil {
		return err
	}
	steps := []struct {
		name string
		act  func() error
	}{
		{"pull_request.opened (first preview)", func() error { return deliver(gh.PullRequestEvent(demo.Repo, pr, "opened")) }},
		{"pull_request.synchronize (existing preview)", func() error {
			if _, err := gh.PushPR(demo.Repo, pr, map[string]string{"web/src/x.js": "2\n"}, "y"); err != nil {
				return err
			}
			return deliver(gh.PullRequestEvent(demo.Repo, pr, "synchronize"))
		}},
		{"redelivery of that synchronize", func() error { return deliver(gh.PullRequestEvent(demo.Repo, pr, "synchronize")) }},
		{"comment /redeploy", func() error {
			id, err := gh.AddComment(demo.Repo, pr, "ada", "/redeploy")
			if err != nil {
				return err
			}
			return deliver(gh.IssueCommentEvent(demo.Repo, id))
		}},
		{"pull_request.closed", func() error {
			if _, err := gh.ClosePR(demo.Repo, pr, false); err != nil {
				return err
			}
			return deliver(gh.PullRequestEvent(demo.Repo, pr, "closed"))
		}},
	}
	for _, st := range steps {
		if err := measure(st.name, st.act); err != nil {
			return err
		}
	}

	fmt.Printf("GitHub API requests per event (sample app: 3 Workers), from the simulated GitHub's counters\n\n")
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "event\trequests\twrites\tby route")
	for _, r := range rows {
		total, writes := 0, 0
		var parts []string
		for k, v := range r.counts {
			total += v
			if !strings.HasPrefix(k, "GET ") {
				writes += v
			}
			parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", r.event, total, writes, strings.Join(parts, "; "))
	}
	return w.Flush()
}
