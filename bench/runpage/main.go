// Command runpage measures the run page (internal/web) with many runs
// stored: how long GET /runs/{id} takes, and how long a line of a step's
// log takes from being stored to reaching a browser's live stream.
//
// The database gets -runs runs (default 100,000, written with COPY), each
// with 8 steps and 5 short log chunks, spread over 50 repositories and
// the four kinds. Among them, -measured runs are typical (15 steps, 240
// KiB of log in 600 chunks) and -big runs are at the per-run bound (4 MiB
// of log in 256 chunks of 16 KiB). Pages are fetched over HTTP from the
// real handler (html/template, escaping, PostgreSQL), one after another.
//
// Baselines, in the same run: the same pages with only the measured runs
// stored (how much the other runs cost), and with the 100,000 runs but
// without run_log_chunks' index (what the index is for).
//
// Live latency: a line stored as the bot's writer stores it (one
// WriteLog) until a client of /runs/{id}/events reads it, woken by
// PostgreSQL's NOTIFY through state.ListenRuns. The writer itself holds a
// line at most 150 ms before storing it (pipeline's logFlushEvery); the
// table adds that bound.
//
//	go run ./bench/runpage
//	go run ./bench/runpage -runs 20000 -requests 200
//
// It uses $DATABASE_URL (a superuser URL) or starts a private PostgreSQL.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/store"
	"github.com/revelations-studio/deploybot/internal/web"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

func main() {
	runs := flag.Int("runs", 100_000, "runs stored")
	measured := flag.Int("measured", 100, "typical runs whose pages are fetched")
	big := flag.Int("big", 10, "runs at the 4 MiB bound whose pages are fetched")
	requests := flag.Int("requests", 1000, "page fetches per scenario and kind of run")
	lines := flag.Int("lines", 200, "lines streamed for the live latency")
	flag.Parse()
	if err := run(*runs, *measured, *big, *requests, *lines); err != nil {
		fmt.Fprintln(os.Stderr, "runpage:", err)
		os.Exit(1)
	}
}

func run(runs, measured, big, requests, lines int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	admin, cluster, stop, err := pgcluster.Server(ctx, os.Getenv("DATABASE_URL"), "")
	if err != nil {
		return err
	}
	defer stop()

	type scenario struct {
		name     string
		others   int  // runs stored besides the measured ones
		dropIdx  bool // without run_log_chunks' index
		typical  latencies
		big      latencies
		pageSize [2]int
	}
	scenarios := []*scenario{
		{name: "only the measured runs stored", others: 0},
		{name: fmt.Sprintf("%d runs stored", runs), others: runs},
		{name: fmt.Sprintf("%d runs stored, no index on the log's run", runs), others: runs, dropIdx: true},
	}
	var live latencies
	var lastPool *pgxpool.Pool // the scenario's database; the third reuses the second's
	for i, sc := range scenarios {
		if i == 2 {
			// Same data as the previous scenario, index dropped.
			pool := lastPool
			if _, err := pool.Exec(ctx, `DROP INDEX run_log_chunks_run_idx; ANALYZE run_log_chunks`); err != nil {
				return err
			}
		} else {
			if lastPool != nil {
				lastPool.Close()
			}
			url := admin
			if cluster != nil {
				db := "bench_runpage_" + strconv.Itoa(i)
				if err := cluster.CreateDatabase(ctx, db); err != nil {
					return err
				}
				url = cluster.URL(db)
			}
			pool, err := store.Open(ctx, url)
			if err != nil {
				return err
			}
			lastPool = pool
			if _, err := store.MigrateUp(ctx, pool); err != nil {
				return err
			}
			start := time.Now()
			if err := seed(ctx, pool, sc.others, measured, big); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%s: seeded in %s\n", sc.name, time.Since(start).Round(time.Millisecond))
		}
		pool := lastPool
		srv, hub, stopListen := serve(pool)
		typ, bigIDs := measuredIDs(sc.others, measured, big)
		n := requests
		if sc.dropIdx {
			n = max(requests/20, 20) // each page scans the whole table: a few say enough
		}
		sc.typical, sc.pageSize[0], err = fetch(ctx, srv.URL, typ, n)
		if err != nil {
			return err
		}
		stopProfile := func() {}
		if i == 1 {
			stopProfile = profile(os.Getenv("BENCH_CPUPROFILE"))
		}
		sc.big, sc.pageSize[1], err = fetch(ctx, srv.URL, bigIDs, max(n/10, 20))
		stopProfile()
		if err != nil {
			return err
		}
		if i == 1 {
			live, err = streamLatency(ctx, pool, srv.URL, typ[0], lines, hub)
			if err != nil {
				return err
			}
		}
		stopListen()
		srv.Close()
		fmt.Fprintf(os.Stderr, "%s: measured\n", sc.name)
	}
	lastPool.Close()

	base := scenarios[0]
	fmt.Printf("| runs stored | run page | page size | p50 | p99 | p50 ratio | p99 ratio |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, sc := range scenarios {
		for k, what := range []string{"typical (15 steps, 240 KiB log)", "at the bound (4 MiB log)"} {
			l, b := sc.typical, base.typical
			if k == 1 {
				l, b = sc.big, base.big
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %.2f | %.2f |\n", sc.name, what, kib(sc.pageSize[k]),
				ms(l.pct(50)), ms(l.pct(99)), ratio(l.pct(50), b.pct(50)), ratio(l.pct(99), b.pct(99)))
		}
	}
	fmt.Printf("\nLive log, %d lines: stored → read from /runs/{id}/events: p50 %s, p99 %s, max %s; with the writer's 150 ms batching, a line reaches the browser within %s at p99.\n",
		len(live), ms(live.pct(50)), ms(live.pct(99)), ms(live.pct(100)), ms(live.pct(99)+150*time.Millisecond))
	return nil
}

// serve starts the pages over pool, with the hub fed by the database's
// notifications as in the bot.
func serve(pool *pgxpool.Pool) (*httptest.Server, *web.Hub, func()) {
	hub := web.NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { state.ListenRuns(ctx, pool, hub.Notify); close(done) }()
	h, err := web.New(web.Options{Reader: web.StateReader(state.New(pool)), Hub: hub, Logger: zerolog.Nop()})
	if err != nil {
		panic(err) // embedded templates
	}
	return httptest.NewServer(h), hub, func() { h.Close(); cancel(); <-done }
}

// The measured runs' ids: after the others, so that the others' rows come
// first in every table, as older runs do.
func measuredIDs(others, measured, big int) (typical, bigIDs []int64) {
	for i := range measured {
		typical = append(typical, int64(others+i+1))
	}
	for i := range big {
		bigIDs = append(bigIDs, int64(others+measured+i+1))
	}
	return typical, bigIDs
}

var (
	kinds   = []string{"preview", "test", "production", "teardown"}
	stepSet = []string{"source", "database", "setup", "build:web", "build:auth", "build:api", "migrate", "deploy:auth",
		"health:auth", "deploy:api", "health:api", "deploy:web", "health:web", "deployment", "report"}
)

// seed writes others runs with 8 steps and 5 log chunks each, then the
// measured runs: typical ones (15 steps, 40 chunks of ~400 bytes each)
// and big ones (15 steps, 256 chunks of 16 KiB in all).
func seed(ctx context.Context, pool *pgxpool.Pool, others, measured, big int) error {
	if _, err := pool.Exec(ctx, `ALTER TABLE run_log_chunks DISABLE TRIGGER run_log_chunks_notify`); err != nil {
		return err
	}
	total := others + measured + big
	t0 := time.Now().Add(-time.Duration(total) * time.Minute)
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"runs"},
		[]string{"id", "kind", "repo", "pr_number", "branch", "head_sha", "status", "reason", "actor", "check_run_id", "started_at", "finished_at"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			i := 0
			return func() ([]any, error) {
				if i == total {
					return nil, nil
				}
				i++
				start := t0.Add(time.Duration(i) * time.Minute)
				kind := kinds[i%len(kinds)]
				pr, branch := i%500+1, ""
				if kind == "production" || kind == "test" {
					pr, branch = 0, "main"
				}
				return []any{int64(i), kind, fmt.Sprintf("acme/repo-%d", i%50), pr, branch, fmt.Sprintf("%040x", i), "succeeded",
					"pull_request.synchronize", "octocat", int64(i), start, start.Add(90 * time.Second)}, nil
			}
		}()))
	if err != nil {
		return fmt.Errorf("copy runs: %w", err)
	}
	if _, err := pool.Exec(ctx, `SELECT setval('runs_id_seq', $1)`, total); err != nil {
		return err
	}
	type chunk struct {
		run  int64
		step string
		text string
	}
	var steps [][]any
	var chunks []chunk
	flush := func() error {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"run_steps"}, []string{"run_id", "name", "status", "started_at", "finished_at", "log_tail"},
			pgx.CopyFromRows(steps)); err != nil {
			return fmt.Errorf("copy steps: %w", err)
		}
		_, err := pool.CopyFrom(ctx, pgx.Identifier{"run_log_chunks"}, []string{"run_id", "step", "body"},
			pgx.CopyFromSlice(len(chunks), func(i int) ([]any, error) { return []any{chunks[i].run, chunks[i].step, chunks[i].text}, nil }))
		if err != nil {
			return fmt.Errorf("copy log chunks: %w", err)
		}
		steps, chunks = steps[:0], chunks[:0]
		return nil
	}
	line := strings.Repeat("compiling src/components/Checkout.tsx ", 10) + "\n" // ~390 bytes
	for i := 1; i <= total; i++ {
		id := int64(i)
		start := t0.Add(time.Duration(i) * time.Minute)
		nSteps, nChunks, text := 8, 5, line
		switch {
		case i > others+measured:
			nSteps, nChunks, text = 15, 256, strings.Repeat(line, 42) // 16 KiB
		case i > others:
			nSteps, nChunks = 15, 600
		}
		for s := range nSteps {
			at := start.Add(time.Duration(s) * 5 * time.Second)
			steps = append(steps, []any{id, stepSet[s], "succeeded", at, at.Add(4 * time.Second), line})
		}
		for c := range nChunks {
			chunks = append(chunks, chunk{id, stepSet[c%nSteps], text})
		}
		if len(chunks) >= 20000 || i == total {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE run_log_chunks ENABLE TRIGGER run_log_chunks_notify; ANALYZE`); err != nil {
		return err
	}
	return nil
}

type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// fetch gets the pages of ids, round robin, n times, after one warm-up
// round (of at most n pages).
func fetch(ctx context.Context, base string, ids []int64, n int) (latencies, int, error) {
	get := func(id int64) (time.Duration, int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/runs/%d", base, id), nil)
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
			return 0, 0, fmt.Errorf("GET run %d: %d %v", id, resp.StatusCode, err)
		}
		return d, len(b), nil
	}
	for _, id := range ids[:min(len(ids), n)] {
		if _, _, err := get(id); err != nil {
			return nil, 0, err
		}
	}
	var out latencies
	size := 0
	for i := range n {
		d, sz, err := get(ids[i%len(ids)])
		if err != nil {
			return nil, 0, err
		}
		out, size = append(out, d), sz
	}
	return out, size, nil
}

// streamLatency stores lines one at a time into a running run and times
// each from its WriteLog until the stream delivers it.
func streamLatency(ctx context.Context, pool *pgxpool.Pool, base string, run int64, lines int, _ *web.Hub) (latencies, error) {
	st := state.New(pool)
	if _, err := pool.Exec(ctx, `UPDATE runs SET status = 'running', finished_at = NULL WHERE id = $1`, run); err != nil {
		return nil, err
	}
	defer func() {
		_, _ = pool.Exec(context.WithoutCancel(ctx), `UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id = $1`, run)
	}()
	chunks, err := st.Steps.LogSince(ctx, run, 0, 1<<20)
	if err != nil {
		return nil, err
	}
	after := chunks[len(chunks)-1].ID
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, fmt.Sprintf("%s/runs/%d/events?after=%d", base, run, after), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	// wait reads the stream until it carries text.
	wait := func(text string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if strings.HasPrefix(line, "data: ") && strings.Contains(line, text) {
				return nil
			}
		}
	}
	var out latencies
	for i := range lines {
		text := fmt.Sprintf("live line %d", i)
		start := time.Now()
		if _, err := st.Steps.WriteLog(ctx, run, state.LogWrite{Chunks: []state.LogChunk{{Step: "build:web", Text: text + "\n"}}}); err != nil {
			return nil, err
		}
		if err := wait(text); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// profile writes a CPU profile of the pages at the bound, with the runs
// stored, to path when set (BENCH_CPUPROFILE), until the returned function
// is called.
func profile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func kib(n int) string { return fmt.Sprintf("%.0f KiB", float64(n)/1024) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
