// Command repopage measures the repository page and the overview
// (internal/web) with many runs stored: how long GET /repos/{owner}/{name}
// (as it opens, filtered, and a later page) and GET / take, and, for
// comparison, a run's page.
//
// The database gets -runs runs (default 100,000, written with COPY) over
// 20 repositories and the four kinds, each with 8 steps; 1 in 20 failed,
// production runs record Worker versions and 1 in 10 of those rolled
// back; each repository has 25 open previews and a production deploy
// queued. Pages are fetched over HTTP from the real handler
// (html/template, PostgreSQL), one after another, round robin over the
// repositories.
//
// Baseline, in the same run: the same pages without the indexes migration
// 00014 adds (what they are for).
//
//	go run ./bench/repopage
//	go run ./bench/repopage -runs 20000 -requests 200
//
// It uses $DATABASE_URL (a superuser URL) or starts a private PostgreSQL.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/store"
	"github.com/revelations-studio/deploybot/internal/web"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

const repos = 20

func main() {
	runs := flag.Int("runs", 100_000, "runs stored")
	requests := flag.Int("requests", 500, "fetches of each page")
	flag.Parse()
	if err := run(*runs, *requests); err != nil {
		fmt.Fprintln(os.Stderr, "repopage:", err)
		os.Exit(1)
	}
}

// page is one kind of page measured.
type page struct {
	name string
	path func(i int) string // the i-th fetch's path
}

func run(runs, requests int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	admin, cluster, stop, err := pgcluster.Server(ctx, os.Getenv("DATABASE_URL"), "")
	if err != nil {
		return err
	}
	defer stop()
	url := admin
	if cluster != nil {
		if err := cluster.CreateDatabase(ctx, "bench_repopage"); err != nil {
			return err
		}
		url = cluster.URL("bench_repopage")
	}
	pool, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		return err
	}
	start := time.Now()
	if err := seed(ctx, pool, runs); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeded %d runs in %s\n", runs, time.Since(start).Round(time.Millisecond))

	if os.Getenv("BENCH_QUERIES") != "" {
		queries(ctx, pool)
	}
	repo := func(i int) string { return fmt.Sprintf("acme/repo-%d", i%repos) }
	pages := []page{
		{"repository page", func(i int) string { return "/repos/" + repo(i) }},
		{"repository page, kind=production", func(i int) string { return "/repos/" + repo(i) + "?kind=production" }},
		{"repository page, status=failed", func(i int) string { return "/repos/" + repo(i) + "?status=failed" }},
		{"repository page, 10th page (before=)", func(i int) string {
			// 500 runs back: each repository has a run every 20 ids.
			return fmt.Sprintf("/repos/%s?before=%d", repo(i), runs-500*repos+i%repos)
		}},
		{"overview (/)", func(int) string { return "/" }},
		{"run page (8 steps)", func(i int) string { return fmt.Sprintf("/runs/%d", runs-i%1000) }},
	}
	type result struct {
		lat  [][]time.Duration
		size []int
	}
	measure := func() (result, error) {
		h, err := web.New(web.Options{Reader: web.StateReader(state.New(pool)), Logger: zerolog.Nop()})
		if err != nil {
			return result{}, err
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		var r result
		for _, p := range pages {
			l, size, err := fetch(ctx, srv.URL, p, requests)
			if err != nil {
				return r, err
			}
			r.lat, r.size = append(r.lat, l), append(r.size, size)
		}
		return r, nil
	}
	with, err := measure()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "measured with the indexes")
	if _, err := pool.Exec(ctx, `DROP INDEX runs_repo_idx, runs_repo_kind_idx, runs_repo_status_idx, runs_failed_idx, runs_active_idx; ANALYZE runs`); err != nil {
		return err
	}
	without, err := measure()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "measured without them")

	fmt.Printf("| page (%d runs stored) | size | p50 | p99 | without 00014's indexes: p50 | p99 |\n| --- | ---: | ---: | ---: | ---: | ---: |\n", runs)
	for i, p := range pages {
		fmt.Printf("| %s | %.0f KiB | %s | %s | %s | %s |\n", p.name, float64(with.size[i])/1024,
			ms(pct(with.lat[i], 50)), ms(pct(with.lat[i], 99)), ms(pct(without.lat[i], 50)), ms(pct(without.lat[i], 99)))
	}
	return nil
}

var kinds = []string{"preview", "test", "production", "teardown"}

// seed writes runs runs (run i is repository i%20's, kind i%4), their
// steps, the repositories' previews and a queued production deploy each.
func seed(ctx context.Context, pool *pgxpool.Pool, runs int) error {
	now := time.Now()
	t0 := now.Add(-time.Duration(runs) * time.Minute)
	status := func(i int) string {
		if i%20 == 3 || i%20 == 6 { // a failed preview or production run of every other repository
			return "failed"
		}
		return "succeeded"
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"runs"},
		[]string{"id", "kind", "repo", "pr_number", "branch", "head_sha", "status", "reason", "actor", "check_run_id", "started_at", "finished_at", "versions"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			i := 0
			return func() ([]any, error) {
				if i == runs {
					return nil, nil
				}
				i++
				start := t0.Add(time.Duration(i) * time.Minute)
				kind := kinds[i%len(kinds)]
				pr, branch, versions := i%500+1, "", "{}"
				if kind == "production" || kind == "test" {
					pr, branch = 0, "main"
				}
				if kind == "production" {
					versions = fmt.Sprintf(`{"codex-web": "v-%d", "codex-api": "v-%d"}`, i, i)
				}
				return []any{int64(i), kind, fmt.Sprintf("acme/repo-%d", i%repos), pr, branch, fmt.Sprintf("%040x", i), status(i),
					"push", "octocat", int64(i), start, start.Add(90 * time.Second), versions}, nil
			}
		}()))
	if err != nil {
		return fmt.Errorf("copy runs: %w", err)
	}
	if _, err := pool.Exec(ctx, `SELECT setval('runs_id_seq', $1)`, runs); err != nil {
		return err
	}
	steps := []string{"source", "database", "build:web", "build:api", "deploy:web", "health:web", "deploy:api", "health:api"}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"run_steps"}, []string{"run_id", "name", "status", "started_at", "finished_at"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			i, s := 1, 0
			return func() ([]any, error) {
				if i > runs {
					return nil, nil
				}
				name := steps[s]
				// 1 in 10 failed production runs rolled back.
				if kinds[i%len(kinds)] == "production" && status(i) == "failed" && i%10 == 6 && s == len(steps)-1 {
					name = "rollback:web"
				}
				at := t0.Add(time.Duration(i)*time.Minute + time.Duration(s)*10*time.Second)
				row := []any{int64(i), name, "succeeded", at, at.Add(9 * time.Second)}
				if s++; s == len(steps) {
					i, s = i+1, 0
				}
				return row, nil
			}
		}()))
	if err != nil {
		return fmt.Errorf("copy steps: %w", err)
	}
	var previews [][]any
	for r := range repos {
		for pr := 1; pr <= 25; pr++ {
			res := fmt.Sprintf(`{"branch": "pr-%d", "workers": [{"name": "web", "script": "codex-web-preview-%d", "hostname": "codex-preview-%d.example.test"}]}`, pr, pr, pr)
			previews = append(previews, []any{fmt.Sprintf("acme/repo-%d", r), pr, int64(1), "ready", fmt.Sprintf("%040x", pr), res})
		}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"previews"}, []string{"repo", "pr_number", "installation_id", "state", "deployed_sha", "resources"},
		pgx.CopyFromRows(previews)); err != nil {
		return fmt.Errorf("copy previews: %w", err)
	}
	// A production deploy queued per repository, as the intake queues it.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return err
	}
	for r := range repos {
		if _, err := client.Insert(ctx, intent.ProductionPush{
			Meta: intent.Meta{DeliveryID: fmt.Sprint("bench-", r), Event: "push", Sender: "octocat",
				Repo: intent.Repo{Owner: "acme", Name: fmt.Sprint("repo-", r), DefaultBranch: "main"}},
			Push: intent.Push{Branch: "main", After: fmt.Sprintf("%040x", r)},
		}, nil); err != nil {
			return err
		}
	}
	_, err = pool.Exec(ctx, `ANALYZE`)
	return err
}

// fetch gets p n times after a warm-up round of min(n, 50) fetches.
func fetch(ctx context.Context, base string, p page, n int) ([]time.Duration, int, error) {
	get := func(i int) (time.Duration, int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p.path(i), nil)
		if err != nil {
			return 0, 0, err
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("GET %s: %d %v %.200s", p.path(i), resp.StatusCode, err, b)
		}
		return d, len(b), nil
	}
	for i := range min(n, 50) {
		if _, _, err := get(i); err != nil {
			return nil, 0, err
		}
	}
	var out []time.Duration
	size := 0
	for i := range n {
		d, sz, err := get(i)
		if err != nil {
			return nil, 0, err
		}
		out, size = append(out, d), sz
	}
	return out, size, nil
}

func pct(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// queries times each of the pages' reads alone (BENCH_QUERIES=1), to find
// which one a slow page waits for.
func queries(ctx context.Context, pool *pgxpool.Pool) {
	r := web.StateReader(state.New(pool))
	for name, q := range map[string]func() error{
		"Repos": func() error { _, err := r.Repos(ctx); return err },
		"Operations": func() error {
			_, err := r.Operations(ctx, time.Now().Add(-24*time.Hour))
			return err
		},
		"Runs": func() error {
			_, err := r.Runs(ctx, state.ListFilter{Repo: "acme/repo-1", Limit: 51})
			return err
		},
		"Waiting": func() error { _, err := state.New(pool).Jobs.Waiting(ctx); return err },
		"FailedSince": func() error {
			_, err := state.New(pool).Runs.FailedSince(ctx, time.Now().Add(-24*time.Hour), 100)
			return err
		},
		"Alive":           func() error { _, err := state.New(pool).Previews.Alive(ctx); return err },
		"OpenPreviews":    func() error { _, err := r.OpenPreviews(ctx, "acme/repo-1"); return err },
		"ProductionQueue": func() error { _, err := r.ProductionQueue(ctx, "acme/repo-1"); return err },
	} {
		var l []time.Duration
		for range 20 {
			start := time.Now()
			if err := q(); err != nil {
				fmt.Fprintln(os.Stderr, name, err)
				break
			}
			l = append(l, time.Since(start))
		}
		fmt.Fprintf(os.Stderr, "%s: p50 %s, max %s\n", name, ms(pct(l, 50)), ms(pct(l, 100)))
	}
}
