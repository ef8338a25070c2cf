// Command intake measures how fast the bot acknowledges webhooks, against a
// baseline measured in the same run on the same database: a handler that
// checks the same HMAC signature and does one INSERT of the delivery. The
// bot's handler parses the event, stores the delivery and inserts its River
// job in one transaction.
//
// Load is open-loop at fixed offered rates (a request is sent on schedule
// whether or not earlier ones were answered), so queueing shows up as
// latency, as it would for GitHub.
//
//	go run ./bench/intake                      # 100, 500, 1000 deliveries/s for 10 s each
//	go run ./bench/intake -rates 200 -duration 30s
//
// It uses $DATABASE_URL (a superuser URL) or starts a private PostgreSQL.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/handlers"
	"github.com/revelations-studio/deploybot/internal/intake"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/server"
	"github.com/revelations-studio/deploybot/internal/store"
	"github.com/revelations-studio/deploybot/pipeline"
)

const secret = "bench-secret"

func main() {
	rates := flag.String("rates", "100,500,1000", "offered rates, deliveries per second")
	duration := flag.Duration("duration", 10*time.Second, "how long each rate is offered")
	flag.Parse()
	if err := run(*rates, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(rateList string, duration time.Duration) error {
	ctx := context.Background()
	adminURL := os.Getenv("DATABASE_URL")
	if adminURL == "" {
		dir, err := os.MkdirTemp("", "deploybot-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "pg"), Ephemeral: true})
		if err != nil {
			return err
		}
		defer cluster.Stop(context.Background())
		if err := cluster.CreateDatabase(ctx, "bench"); err != nil {
			return err
		}
		adminURL = cluster.URL("bench")
	}
	pool, err := store.Open(ctx, adminURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_baseline (delivery_id text PRIMARY KEY, event text, body jsonb, received_at timestamptz DEFAULT now())`); err != nil {
		return err
	}

	payload, err := os.ReadFile(filepath.Join("testdata", "github-webhooks", "pull_request", "synchronize.payload.json"))
	if err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	// The job queue is not started: this measures the acknowledgement, and
	// workers would compete for the same two cores.
	queue, err := pipeline.NewQueue(pool, pipeline.QueueOptions{Workers: 1, Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	bot := httptest.NewServer(server.New(server.Options{
		WebhookSecret: secret, Handlers: handlers.All(intake.New(pool, queue)), Logger: zerolog.Nop(),
	}))
	defer bot.Close()
	base := httptest.NewServer(baseline(pool))
	defer base.Close()

	fmt.Printf("webhook intake, %s per rate, payload %d bytes (pull_request.synchronize)\n\n", duration, len(payload))
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "offered/s\thandler\tp50\tp99\tthroughput/s\terrors\tp50 ratio\tp99 ratio\tthroughput ratio\t")
	for _, f := range strings.Split(rateList, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || rate <= 0 {
			return fmt.Errorf("bad rate %q", f)
		}
		b := load(base.URL+server.WebhookPath, payload, rate, duration, "base")
		stopProfile := profile(os.Getenv("BENCH_CPUPROFILE"))
		r := load(bot.URL+server.WebhookPath, payload, rate, duration, "bot")
		stopProfile()
		fmt.Fprintf(w, "%d\tbaseline INSERT\t%s\t%s\t%.0f\t%d\t1.00\t1.00\t1.00\t\n", rate, ms(b.p50), ms(b.p99), b.throughput, b.errors)
		fmt.Fprintf(w, "%d\tdeploybot\t%s\t%s\t%.0f\t%d\t%.2f\t%.2f\t%.2f\t\n", rate, ms(r.p50), ms(r.p99), r.throughput, r.errors,
			ratio(r.p50, b.p50), ratio(r.p99, b.p99), r.throughput/b.throughput)
	}
	return w.Flush()
}

// profile writes a CPU profile of the bot's load to path, when set
// (BENCH_CPUPROFILE), until the returned function is called.
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
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// baseline checks the signature like the bot and stores the delivery with
// one INSERT: the least a durable webhook receiver can do.
func baseline(pool *pgxpool.Pool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, server.MaxBodyBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if !hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if _, err := pool.Exec(r.Context(), `INSERT INTO bench_baseline (delivery_id, event, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			r.Header.Get("X-GitHub-Delivery"), r.Header.Get("X-GitHub-Event"), body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

type result struct {
	p50, p99   time.Duration
	throughput float64
	errors     int64
}

var seq atomic.Int64

// load offers rate deliveries per second for d, open-loop.
func load(url string, payload []byte, rate int, d time.Duration, tag string) result {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(payload)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2000, MaxConnsPerHost: 0}, Timeout: 30 * time.Second}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      atomic.Int64
		wg        sync.WaitGroup
	)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	n := int(d / interval)
	for i := range n {
		// Send on schedule, not when the previous answer came.
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			id := fmt.Sprintf("%s-%d", tag, seq.Add(1))
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "pull_request")
			req.Header.Set("X-GitHub-Delivery", id)
			req.Header.Set("X-Hub-Signature-256", sig)
			t0 := time.Now()
			resp, err := client.Do(req)
			lat := time.Since(t0)
			if err != nil {
				errs.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs.Add(1)
				return
			}
			mu.Lock()
			latencies = append(latencies, lat)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	res := result{errors: errs.Load(), throughput: float64(len(latencies)) / elapsed.Seconds()}
	if len(latencies) > 0 {
		res.p50 = latencies[len(latencies)*50/100]
		res.p99 = latencies[min(len(latencies)-1, len(latencies)*99/100)]
	}
	return res
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
