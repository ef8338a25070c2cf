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
	name           string
	wall, critical time.Duration
	// before is the time from the webhook to the first step's start;
	// after, from the last step's end to the run's end.
	before, after time.Duration
}

// scenario is how slow the simulated services are.
type scenario struct {
	name               string
	cloudCall, cloudOp time.Duration // added to every Neon and Cloudflare call; a Neon operation's run time
	certs              time.Duration // a preview hostname is healthy this long after it is attached
	githubCall         time.Duration // added to every GitHub call
}

var scenarios = []scenario{
	{name: "instant"},
	{name: "slow clouds (+30 ms/call, 500 ms ops, 1 s certs)", cloudCall: 30 * time.Millisecond, cloudOp: 500 * time.Millisecond, certs: time.Second},
	{name: "slow clouds, GitHub +50 ms/call", cloudCall: 30 * time.Millisecond, cloudOp: 500 * time.Millisecond, certs: time.Second, githubCall: 50 * time.Millisecond},
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
	for i, sc := range scenarios {
		dbName := fmt.Sprintf("bench_%d", i)
		botURL := admin
		if cluster != nil {
			if err := cluster.CreateDatabase(ctx, dbName); err != nil {
				return err
			}
			botURL = cluster.URL(dbName)
		}
		m, err := measure(ctx, admin, botURL, filepath.Join(dir, dbName), sc)
		if err != nil {
			return err
		}
		results = append(results, m)
	}

	fmt.Printf("preview of the sample app (3 Workers): wall time vs the critical path of its steps\n\n")
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "services\twall\tcritical path\tbot overhead\tbefore the first step\tafter the last step\t")
	for _, m := range results {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t\n", m.name, m.wall.Round(time.Millisecond), m.critical.Round(time.Millisecond),
			(m.wall - m.critical).Round(time.Millisecond), m.before.Round(time.Millisecond), m.after.Round(time.Millisecond))
	}
	return w.Flush()
}

func measure(ctx context.Context, admin, botURL, dataDir string, sc scenario) (measurement, error) {
	s, err := demo.StartStack(ctx, demo.StackOptions{AdminURL: admin, DatabaseURL: botURL, DataDir: dataDir, Logger: zerolog.Nop(), NeonOperationTime: sc.cloudOp})
	if err != nil {
		return measurement{}, err
	}
	defer s.Close()
	m := measurement{name: sc.name}
	gh := s.Sandbox.GitHub
	if _, err := gh.Commit(demo.Repo, "bench", map[string]string{"web/src/b.js": "1\n"}, "b"); err != nil {
		return m, err
	}
	pr, err := gh.OpenPR(demo.Repo, "bench", "main", "bench", false, false)
	if err != nil {
		return m, err
	}
	if sc.cloudCall > 0 {
		s.Sandbox.Neon.Faults().Set(fault.Rule{Latency: sc.cloudCall})
		s.Sandbox.Cloudflare.Faults().Set(fault.Rule{Latency: sc.cloudCall})
	}
	if sc.githubCall > 0 {
		gh.Faults().Set(fault.Rule{Latency: sc.githubCall})
	}
	if sc.certs > 0 {
		for _, prefix := range []string{"codex", "auth", "api"} {
			s.Sandbox.Edge.SetHealth(fmt.Sprintf("%s-preview-%d.revelations.studio", prefix, pr), edge.Health{HealthyAfter: sc.certs})
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
	// The wall time ends with the run: its check run concluded and its
	// comment edited (the bot records the end after both).
	var end time.Time
	if err := s.App.Pool.QueryRow(ctx, `SELECT finished_at FROM runs WHERE kind = 'preview'`).Scan(&end); err != nil {
		return m, err
	}
	m.wall = end.Sub(start)

	rows, err := s.App.Pool.Query(ctx, `
		SELECT s.name, s.started_at, s.finished_at
		FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.kind = 'preview'`)
	if err != nil {
		return m, err
	}
	d := map[string]time.Duration{}
	var first, last time.Time
	for rows.Next() {
		var name string
		var from, to time.Time
		if err := rows.Scan(&name, &from, &to); err != nil {
			return m, err
		}
		d[name] = to.Sub(from)
		if first.IsZero() || from.Before(first) {
			first = from
		}
		if to.After(last) {
			last = to
		}
		if os.Getenv("BENCH_TRACE") != "" {
			fmt.Printf("%-14s %6d ms → %6d ms\n", name, from.Sub(start).Milliseconds(), to.Sub(start).Milliseconds())
		}
	}
	if err := rows.Err(); err != nil {
		return m, err
	}
	m.before, m.after = first.Sub(start), end.Sub(last)

	// The critical path: the longest chain of step durations through the
	// sample's graph. The database and the source start at once; the setup
	// command runs on the source; the builds and the migration start from
	// it (the migration also needs the database); each Worker uploads once
	// it is built, the migration is done and the Workers it binds are up
	// (auth, then api, then web); its health check follows; the
	// deployment needs every health check.
	setup := d["source"] + d["setup"]
	migrated := max(d["database"], setup) + d["migrate"]
	var uploaded, healthy time.Duration
	for _, w := range []string{"auth", "api", "web"} {
		uploaded = max(setup+d["build:"+w], migrated, uploaded) + d["deploy:"+w]
		healthy = max(healthy, uploaded+d["health:"+w])
	}
	m.critical = healthy + d["deployment"]
	return m, nil
}
