// Command pipeline measures what the bot adds to a preview's wall time. The
// sample app (three Workers) is previewed against the sandbox twice: with no
// injected latency, and with the clouds made slow (every Neon and Cloudflare
// call +30 ms, Neon operations running 500 ms, each preview hostname healthy
// only 1 s after it is attached, like a certificate). For each run it
// reports the wall time from the webhook to the concluded check run, and the
// critical path through the run's steps (the longest chain of step
// durations, as the engine runs independent steps in parallel): the
// difference is the bot's own overhead — queueing, GitHub reporting, the
// comment — in the same run.
//
//	go run ./bench/pipeline
//
// It uses $DATABASE_URL (a superuser URL) or starts a private PostgreSQL.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/sandbox/edge"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type measurement struct {
	name               string
	wall, critical     time.Duration
	steps              int
	overhead, overFrac float64
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "deploybot-bench-pipeline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	admin, cluster, stop, err := pgcluster.Server(ctx, os.Getenv("DATABASE_URL"), filepath.Join(dir, "pg"))
	if err != nil {
		return err
	}
	defer stop()

	var results []measurement
	for i, slow := range []bool{false, true} {
		dbName := fmt.Sprintf("bench_%d", i)
		botURL := admin
		if cluster != nil {
			if err := cluster.CreateDatabase(ctx, dbName); err != nil {
				return err
			}
			botURL = cluster.URL(dbName)
		}
		m, err := measure(ctx, admin, botURL, filepath.Join(dir, dbName), slow)
		if err != nil {
			return err
		}
		results = append(results, m)
	}

	fmt.Printf("preview of the sample app (3 Workers): wall time vs the critical path of its steps\n\n")
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "clouds\twall\tcritical path\tbot overhead\toverhead / wall\t")
	for _, m := range results {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.2f\t\n", m.name, m.wall.Round(time.Millisecond), m.critical.Round(time.Millisecond),
			(m.wall - m.critical).Round(time.Millisecond), float64(m.wall-m.critical)/float64(m.wall))
	}
	return w.Flush()
}

func measure(ctx context.Context, admin, botURL, dataDir string, slow bool) (measurement, error) {
	s, err := demo.StartStack(ctx, demo.StackOptions{AdminURL: admin, DatabaseURL: botURL, DataDir: dataDir, Logger: zerolog.Nop()})
	if err != nil {
		return measurement{}, err
	}
	defer s.Close()
	m := measurement{name: "instant"}
	gh := s.Sandbox.GitHub
	if _, err := gh.Commit(demo.Repo, "bench", map[string]string{"web/src/b.js": "1\n"}, "b"); err != nil {
		return m, err
	}
	pr, err := gh.OpenPR(demo.Repo, "bench", "main", "bench", false, false)
	if err != nil {
		return m, err
	}
	if slow {
		m.name = "slow (+30 ms/call, 500 ms ops, 1 s certs)"
		s.Sandbox.Neon.Faults().Set(fault.Rule{Latency: 30 * time.Millisecond})
		s.Sandbox.Cloudflare.Faults().Set(fault.Rule{Latency: 30 * time.Millisecond})
		for _, prefix := range []string{"codex", "auth", "api"} {
			s.Sandbox.Edge.SetHealth(fmt.Sprintf("%s-preview-%d.revelations.studio", prefix, pr), edge.Health{HealthyAfter: time.Second})
		}
	}
	ev, err := gh.PullRequestEvent(demo.Repo, pr, "opened")
	if err != nil {
		return m, err
	}
	start := time.Now()
	if _, err := s.Deliver(ctx, ev); err != nil {
		return m, err
	}
	if err := s.WaitIdle(ctx); err != nil {
		return m, err
	}
	m.wall = time.Since(start)

	// The critical path: the longest chain of step durations through the
	// preview's graph (database ‖ source → migrate ‖ builds → deploy → health
	// → deployment).
	rows, err := s.App.Pool.Query(ctx, `
		SELECT s.name, extract(epoch FROM s.finished_at - s.started_at)
		FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.kind = 'preview'`)
	if err != nil {
		return m, err
	}
	d := map[string]time.Duration{}
	for rows.Next() {
		var name string
		var secs float64
		if err := rows.Scan(&name, &secs); err != nil {
			return m, err
		}
		d[name] = time.Duration(secs * float64(time.Second))
		m.steps++
	}
	ready := max(d["database"], d["source"]) + d["migrate"]
	var longest time.Duration
	for _, w := range []string{"web", "auth", "api"} {
		built := d["source"] + d["build:"+w]
		longest = max(longest, max(built, ready)+d["deploy:"+w]+d["health:"+w])
	}
	m.critical = longest + d["deployment"]
	return m, nil
}
