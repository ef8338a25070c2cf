// Command sweep measures the sweeper (pipeline.Sweep) with many open
// previews: its wall time, the GitHub and Neon requests one sweep makes,
// and the bot's memory. One repository gets N pull requests with a
// recorded preview each (rows in previews, as the preview pipeline writes
// them) and a Neon branch each; 5 % of the PRs (-closed-fraction) are
// closed without the bot hearing of it, so that the sweep has real work:
// queueing their teardowns.
// The enqueue function records the jobs instead of queueing them, so no
// teardown runs and every sweep of a scenario finds the same work.
//
// The baseline, measured in the same run on the same data, is the floor
// of any sweep: one SELECT of the previews, one listing of the open pull
// requests (paginated, 100 a page) and one listing of the Neon branches.
// Each figure is printed as a ratio to it. Every scenario is measured cold
// (a new GitHub client: no token, empty ETag cache, as after a restart,
// when the sweep runs at once) and warm (the next sweep, 10 minutes later).
//
// The simulated GitHub and Neon run in a child process (this program,
// started again with -serve-clouds), so the bot's process holds only the
// bot: its heap is what the sweep costs. The child's GitHub does not
// enforce the 5,000 requests/hour limit (a sweep before the fix would wait
// an hour for it); the table says instead what share of that budget six
// sweeps an hour would take.
//
//	go run ./bench/sweep
//	go run ./bench/sweep -previews 10,1000,2000
//
// It uses $DATABASE_URL (a superuser URL) or starts a private PostgreSQL.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/names"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/sandbox"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
	"github.com/revelations-studio/deploybot/internal/sandbox/neonsim"
	"github.com/revelations-studio/deploybot/internal/store"
	"github.com/revelations-studio/deploybot/pipeline"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

const (
	owner    = demo.Owner
	repoName = demo.RepoName
	fullName = demo.Repo
	// ttl is the pipeline file's preview.ttl: every open PR's preview is
	// checked against it (none is that old).
	ttl = "720h"
	// sweepsPerHour is how many sweeps an hour SweepInterval makes.
	sweepsPerHour = int(time.Hour / pipeline.SweepInterval)
	// hourlyLimit is GitHub's primary rate limit of an installation.
	hourlyLimit = 5000
)

func main() {
	serve := flag.Bool("serve-clouds", false, "internal: serve the simulated GitHub and Neon for the measuring process")
	admin := flag.String("admin", "", "internal: superuser URL of the PostgreSQL holding the Neon branches")
	prs := flag.Int("prs", 0, "internal: pull requests to open")
	closed := flag.Int("closed", 0, "internal: how many of them to close")
	drop := flag.Bool("drop", true, "internal: drop the Neon branches' databases on exit")
	previews := flag.String("previews", "10,1000", "comma-separated numbers of previews, one scenario each")
	closedFrac := flag.Float64("closed-fraction", 0.05, "share of the PRs closed without the bot hearing of it")
	runs := flag.Int("runs", 3, "runs per scenario; the tables show each figure's median")
	flag.Parse()
	var err error
	if *serve {
		err = serveClouds(*admin, *prs, *closed, *drop)
	} else {
		err = run(*previews, *closedFrac, max(*runs, 1))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(1)
	}
}

// clouds is what the child tells the parent about the simulators.
type clouds struct {
	BaseURL        string
	AppID          int64
	InstallationID int64
	PrivateKeyPEM  string
	BotLogin       string
	ProjectID      string
	PipelineFile   string
	PRs            []prInfo
	SeedGitHub     time.Duration
	SeedNeon       time.Duration
}

type prInfo struct {
	Number  int
	HeadSHA string
	Closed  bool
}

// counters are the simulators' request counters, per route.
type counters struct {
	GitHub    map[string]int         `json:"github"`
	Responses map[string]map[int]int `json:"github_responses"`
	Neon      map[string]int         `json:"neon"`
}

// serveClouds is the child: simulated GitHub (no rate limit) and Neon with
// n pull requests and their preview branches, served until stdin closes.
func serveClouds(adminURL string, n, closed int, drop bool) error {
	ctx := context.Background()
	gh, err := ghsim.New(ghsim.Options{RateLimit: math.MaxInt32})
	if err != nil {
		return err
	}
	ns, err := neonsim.New(neonsim.Options{AdminURL: adminURL})
	if err != nil {
		return err
	}
	if drop {
		defer ns.Close(context.Background())
	}
	project, err := ns.CreateProject(ctx, "codex")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	gh.SetBaseURL(base + sandbox.GitHubPrefix)
	mux := http.NewServeMux()
	mux.Handle(sandbox.GitHubPrefix+"/", http.StripPrefix(sandbox.GitHubPrefix, gh.Handler()))
	mux.Handle(sandbox.NeonPrefix+"/", http.StripPrefix(sandbox.NeonPrefix, ns.Handler()))
	mux.HandleFunc("GET /counters", func(w http.ResponseWriter, _ *http.Request) {
		st := gh.Snapshot()
		_ = json.NewEncoder(w).Encode(counters{GitHub: st.Requests, Responses: st.Responses, Neon: ns.Snapshot().Requests})
	})
	go func() { _ = http.Serve(ln, mux) }()

	// The sample repository, its pipeline file with a preview TTL.
	files, err := demo.SampleFiles(&sandbox.Sandbox{NeonProject: project})
	if err != nil {
		return err
	}
	files[repoconfig.Path] += "preview:\n  ttl: " + ttl + "\n"
	if err := gh.CreateRepo(owner, repoName, "main"); err != nil {
		return err
	}
	if _, err := gh.Commit(fullName, "main", files, "Initial commit"); err != nil {
		return err
	}
	info := clouds{
		BaseURL: base, AppID: gh.AppID(), InstallationID: gh.InstallationID(), PrivateKeyPEM: string(gh.AppPrivateKeyPEM()),
		BotLogin: gh.BotLogin(), ProjectID: project.ID, PipelineFile: files[repoconfig.Path],
	}
	start := time.Now()
	every := 0
	if closed > 0 {
		every = max(n/closed, 1)
	}
	for i := 1; i <= n; i++ {
		branch := fmt.Sprintf("feature/%d", i)
		sha, err := gh.Commit(fullName, branch, map[string]string{"web/src/feature.js": fmt.Sprintf("export const n = %d;\n", i)}, branch)
		if err != nil {
			return err
		}
		number, err := gh.OpenPR(fullName, branch, "main", "Feature "+strconv.Itoa(i), false, false)
		if err != nil {
			return err
		}
		info.PRs = append(info.PRs, prInfo{Number: number, HeadSHA: sha})
	}
	for i, done := every-1, 0; every > 0 && i < n && done < closed; i, done = i+every, done+1 {
		if _, err := gh.ClosePR(fullName, info.PRs[i].Number, false); err != nil {
			return err
		}
		info.PRs[i].Closed = true
	}
	info.SeedGitHub = time.Since(start)

	// A preview branch per PR, through the Neon API the bot uses: each is a
	// real database (CREATE DATABASE … TEMPLATE).
	start = time.Now()
	for _, pr := range info.PRs {
		body, _ := json.Marshal(map[string]any{
			"branch":    map[string]any{"name": fmt.Sprintf("pr-%d", pr.Number), "parent_id": project.DefaultBranchID},
			"endpoints": []any{map[string]string{"type": "read_write"}},
			"annotation_value": map[string]string{
				neon.AnnotationCreator: neon.CreatorValue, neon.AnnotationRepo: fullName,
				neon.AnnotationPurpose: neon.PurposePreview, neon.AnnotationPR: strconv.Itoa(pr.Number),
			},
		})
		req, _ := http.NewRequest(http.MethodPost, base+sandbox.NeonPrefix+"/api/v2/projects/"+project.ID+"/branches", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer seed")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("create Neon branch pr-%d: %d %s", pr.Number, resp.StatusCode, msg)
		}
	}
	info.SeedNeon = time.Since(start)

	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done
	return nil
}

// cloudProcess is a running child.
type cloudProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	info  clouds
}

func startClouds(ctx context.Context, adminURL string, n, closed int, drop bool) (*cloudProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-serve-clouds", "-admin", adminURL,
		"-prs", strconv.Itoa(n), "-closed", strconv.Itoa(closed), "-drop="+strconv.FormatBool(drop))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &cloudProcess{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReaderSize(stdout, 1<<20).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &p.info)
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("the simulated clouds did not start: %w", err)
	}
	return p, nil
}

func (p *cloudProcess) stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}

func (p *cloudProcess) counters(ctx context.Context) (counters, error) {
	var c counters
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.info.BaseURL+"/counters", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	return c, json.NewDecoder(resp.Body).Decode(&c)
}

// measurement is one measured run of the floor or the sweep.
type measurement struct {
	wall      time.Duration
	github    int   // requests, the token's included
	github304 int   // answered 304 Not Modified: free of rate limit
	token     int   // installation token requests: App-authenticated, not counted either
	received  int64 // bytes of GitHub answers (bodies)
	neon      int
	peakHeap  uint64
	allocated uint64
	// parts of the floor: SELECT, open PRs, Neon branches.
	parts [3]time.Duration
	// what the sweep did
	actions    int
	teardowns  []int
	sweepError error
}

// rateLimited is what counts against the installation's hourly limit.
func (m measurement) rateLimited() int { return m.github - m.github304 - m.token }

type scenario struct {
	previews, closed     int
	seedGitHub, seedNeon time.Duration
	seedRows             time.Duration
	floorCold, floorWarm measurement
	cold, warm           measurement
	heapIdle, heapAfter  uint64
}

func run(list string, closedFrac float64, runs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "deploybot-bench-sweep-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	admin, cluster, stop, err := pgcluster.Server(ctx, os.Getenv("DATABASE_URL"), filepath.Join(dir, "pg"))
	if err != nil {
		return err
	}
	defer stop()
	var results []scenario
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-previews: %q is not a positive number", f)
		}
		closed := int(math.Round(float64(n) * closedFrac))
		botURL := admin
		if cluster != nil {
			db := fmt.Sprintf("bench_sweep_%d", n)
			if err := cluster.CreateDatabase(ctx, db); err != nil {
				return err
			}
			botURL = cluster.URL(db)
		}
		fmt.Fprintf(os.Stderr, "%d previews (%d closed): seeding…\n", n, closed)
		sc, err := measure(ctx, admin, botURL, n, closed, runs, cluster == nil)
		if err != nil {
			return fmt.Errorf("%d previews: %w", n, err)
		}
		results = append(results, sc)
	}
	report(os.Stdout, results, closedFrac, runs)
	return nil
}

func measure(ctx context.Context, admin, botURL string, n, closed, runs int, drop bool) (scenario, error) {
	sc := scenario{previews: n, closed: closed}
	cp, err := startClouds(ctx, admin, n, closed, drop)
	if err != nil {
		return sc, err
	}
	defer cp.stop()
	info := cp.info
	sc.seedGitHub, sc.seedNeon = info.SeedGitHub, info.SeedNeon

	pool, err := store.Open(ctx, botURL)
	if err != nil {
		return sc, err
	}
	defer pool.Close()
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		return sc, err
	}
	cfg := config.Defaults()
	cfg.Repositories = map[string]config.Repository{fullName: {}}
	sc.heapIdle = liveHeap()

	start := time.Now()
	if err := seedPreviews(ctx, pool, info); err != nil {
		return sc, err
	}
	sc.seedRows = time.Since(start)

	// Each run: the floor and the sweep, each with a new client (cold) and
	// then again with the same one (warm).
	var floorCold, floorWarm, cold, warm []measurement
	var sweepDeps *pipeline.Deps
	for range runs {
		deps, received, err := botDeps(info, pool, &cfg)
		if err != nil {
			return sc, err
		}
		for _, into := range []*[]measurement{&floorCold, &floorWarm} {
			var parts [3]time.Duration
			m, err := cp.measure(ctx, "floor", received, func() error { return readFloor(ctx, deps, info, &parts) })
			if err != nil {
				return sc, err
			}
			m.parts = parts
			*into = append(*into, m)
		}
		sweepDeps, received, err = botDeps(info, pool, &cfg)
		if err != nil {
			return sc, err
		}
		for _, into := range []*[]measurement{&cold, &warm} {
			var did measurement // what the sweep did, filled by enqueue
			enqueue := func(_ context.Context, args river.JobArgs) error {
				var a struct {
					PR int `json:"pr"`
				}
				raw, err := json.Marshal(args)
				if err == nil {
					err = json.Unmarshal(raw, &a)
				}
				did.teardowns = append(did.teardowns, a.PR)
				return err
			}
			m, err := cp.measure(ctx, "sweep", received, func() error {
				actions, err := pipeline.Sweep(ctx, *sweepDeps, enqueue, pipeline.SweepOptions{})
				did.actions, did.sweepError = len(actions), err
				return nil
			})
			if err != nil {
				return sc, err
			}
			m.actions, m.teardowns, m.sweepError = did.actions, did.teardowns, did.sweepError
			if err := checkSweep(m, info); err != nil {
				return sc, err
			}
			*into = append(*into, m)
		}
	}
	sc.floorCold, sc.floorWarm, sc.cold, sc.warm = median(floorCold), median(floorWarm), median(cold), median(warm)
	// The last sweep's client, with its ETag cache, is still held.
	sc.heapAfter = liveHeap()
	runtime.KeepAlive(sweepDeps)
	return sc, nil
}

// median is the median of each figure over runs.
func median(ms []measurement) measurement {
	out := ms[0]
	pick := func(get func(measurement) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = get(m)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	out.wall = time.Duration(pick(func(m measurement) float64 { return float64(m.wall) }))
	out.github = int(pick(func(m measurement) float64 { return float64(m.github) }))
	out.github304 = int(pick(func(m measurement) float64 { return float64(m.github304) }))
	out.token = int(pick(func(m measurement) float64 { return float64(m.token) }))
	out.received = int64(pick(func(m measurement) float64 { return float64(m.received) }))
	out.neon = int(pick(func(m measurement) float64 { return float64(m.neon) }))
	out.peakHeap = uint64(pick(func(m measurement) float64 { return float64(m.peakHeap) }))
	out.allocated = uint64(pick(func(m measurement) float64 { return float64(m.allocated) }))
	for i := range out.parts {
		out.parts[i] = time.Duration(pick(func(m measurement) float64 { return float64(m.parts[i]) }))
	}
	return out
}

// checkSweep: the sweep must have queued exactly the closed PRs' teardowns.
func checkSweep(m measurement, info clouds) error {
	if m.sweepError != nil {
		return fmt.Errorf("the sweep failed: %w", m.sweepError)
	}
	want := map[int]bool{}
	for _, pr := range info.PRs {
		if pr.Closed {
			want[pr.Number] = true
		}
	}
	got := map[int]bool{}
	for _, n := range m.teardowns {
		if got[n] || !want[n] {
			return fmt.Errorf("the sweep queued a teardown of #%d (twice, or an open PR)", n)
		}
		got[n] = true
	}
	if len(got) != len(want) || m.actions != len(want) {
		return fmt.Errorf("the sweep queued %d teardowns and reported %d actions; %d PRs are closed", len(got), m.actions, len(want))
	}
	return nil
}

// botDeps are the sweep's dependencies as cmd/bot wires them (a caching
// installation client per installation), pointed at the child; received
// counts the bytes of GitHub's answers.
func botDeps(info clouds, pool *pgxpool.Pool, cfg *config.Config) (_ *pipeline.Deps, received *atomic.Int64, _ error) {
	received = &atomic.Int64{}
	creator, err := github.NewClientCreator(github.Config{
		V3APIURL: info.BaseURL + sandbox.GitHubPrefix + "/", AppID: info.AppID, PrivateKey: []byte(info.PrivateKeyPEM),
		Transport: countingTransport{received},
	})
	if err != nil {
		return nil, nil, err
	}
	return &pipeline.Deps{
		State:        state.New(pool),
		Repositories: cfg.Repositories,
		MasterKey:    cfg.MasterKey,
		WorkersLimit: cfg.Cloudflare.WorkersLimit,
		GitHub: pipeline.GitHubFunc(func(_ context.Context, installationID int64, owner, name string) (pipeline.Repo, error) {
			client, err := creator.NewInstallationClient(installationID)
			if err != nil {
				return nil, err
			}
			return github.NewReporter(client, owner, name, github.WithBotLogin(info.BotLogin)), nil
		}),
		Neon:   neon.New(info.BaseURL+sandbox.NeonPrefix+"/api/v2", "bench", nil),
		Logger: zerolog.Nop(),
	}, received, nil
}

// countingTransport counts the bytes of the answers' bodies.
type countingTransport struct{ n *atomic.Int64 }

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if resp != nil && resp.Body != nil {
		resp.Body = countingBody{resp.Body, t.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// seedPreviews records a ready preview per PR, named from the pipeline
// file as the preview pipeline names them, and the delivery through which
// the bot learnt the repository's default branch.
func seedPreviews(ctx context.Context, pool *pgxpool.Pool, info clouds) error {
	file, err := repoconfig.Parse(repoconfig.Path, []byte(info.PipelineFile))
	if err != nil {
		return err
	}
	batch := &pgx.Batch{}
	for i, pr := range info.PRs {
		vars := map[string]string{"pr": strconv.Itoa(pr.Number), "sha": pr.HeadSHA, "sha7": pr.HeadSHA[:7],
			"branch": fmt.Sprintf("feature/%d", pr.Number), "repo": repoName}
		res := state.Resources{
			Project: info.ProjectID, Branch: names.BranchName(names.Expand(file.Database.PreviewBranch, vars)),
			AccountID: "0123456789abcdef0123456789abcdef", ZoneID: "fedcba9876543210fedcba9876543210", Mode: "custom_domain",
		}
		for _, w := range file.Workers {
			host, err := names.Hostname(w.PreviewHostname, vars)
			if err != nil {
				return err
			}
			res.Workers = append(res.Workers, state.DeployedWorker{Name: w.Name, Script: names.ScriptName(names.Expand(w.PreviewScript, vars)), Hostname: host})
		}
		raw, err := json.Marshal(res)
		if err != nil {
			return err
		}
		batch.Queue(`INSERT INTO previews (repo, pr_number, installation_id, state, deployed_sha, comment_id, deployment_id,
			neon_branch_id, neon_branch_name, resources) VALUES ($1, $2, $3, 'ready', $4, $5, $6, $7, $8, $9)`,
			fullName, pr.Number, info.InstallationID, pr.HeadSHA, int64(100000+i), int64(200000+i), fmt.Sprintf("br-seed-%d", pr.Number), res.Branch, string(raw))
	}
	intent, _ := json.Marshal(map[string]any{"repo": map[string]any{"owner": owner, "name": repoName, "default_branch": "main"}})
	batch.Queue(`INSERT INTO deliveries (delivery_id, event, action, installation_id, repo, intent_kind, intent)
		VALUES ('bench-seed', 'push', '', $1, $2, 'push', $3)`, info.InstallationID, fullName, string(intent))
	return pool.SendBatch(ctx, batch).Close()
}

// readFloor is what any sweep must read: the previews, the open pull
// requests, the Neon branches.
func readFloor(ctx context.Context, deps *pipeline.Deps, info clouds, parts *[3]time.Duration) error {
	start := time.Now()
	list, err := deps.State.Previews.Held(ctx)
	if err != nil {
		return err
	}
	parts[0] = time.Since(start)
	start = time.Now()
	repo, err := deps.GitHub.Repo(ctx, info.InstallationID, owner, repoName)
	if err != nil {
		return err
	}
	open, err := repo.OpenPullRequests(ctx)
	if err != nil {
		return err
	}
	parts[1] = time.Since(start)
	start = time.Now()
	branches, err := deps.Neon.ListBranches(ctx, info.ProjectID, neon.Filter{})
	if err != nil {
		return err
	}
	parts[2] = time.Since(start)
	closed := 0
	for _, pr := range info.PRs {
		if pr.Closed {
			closed++
		}
	}
	if len(list) != len(info.PRs) || len(open) != len(info.PRs)-closed || len(branches) != len(info.PRs) {
		return fmt.Errorf("floor read %d previews, %d open PRs, %d branches; want %d, %d, %d",
			len(list), len(open), len(branches), len(info.PRs), len(info.PRs)-closed, len(info.PRs))
	}
	return nil
}

// measure runs f once, with the simulators' counters read around it and
// the heap sampled while it runs.
func (p *cloudProcess) measure(ctx context.Context, name string, received *atomic.Int64, f func() error) (measurement, error) {
	var m measurement
	before, err := p.counters(ctx)
	if err != nil {
		return m, err
	}
	receivedBefore := received.Load()
	runtime.GC()
	allocBefore := readMetric("/gc/heap/allocs:bytes")
	stop := sampleHeap()
	start := time.Now()
	err = f()
	m.wall = time.Since(start)
	m.peakHeap = stop()
	m.allocated = readMetric("/gc/heap/allocs:bytes") - allocBefore
	m.received = received.Load() - receivedBefore
	if err != nil {
		return m, fmt.Errorf("%s: %w", name, err)
	}
	after, err := p.counters(ctx)
	if err != nil {
		return m, err
	}
	for route, v := range after.GitHub {
		d := v - before.GitHub[route]
		m.github += d
		if strings.HasPrefix(route, "POST /app/installations/") {
			m.token += d
		}
	}
	for route, byStatus := range after.Responses {
		m.github304 += byStatus[http.StatusNotModified] - before.Responses[route][http.StatusNotModified]
	}
	for route, v := range after.Neon {
		m.neon += v - before.Neon[route]
	}
	return m, nil
}

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	return readMetric("/memory/classes/heap/objects:bytes")
}

// sampleHeap samples the heap's objects every millisecond until stop is
// called, which returns the largest sample.
func sampleHeap() (stop func() uint64) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, readMetric("/memory/classes/heap/objects:bytes"))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return max(peak, readMetric("/memory/classes/heap/objects:bytes"))
	}
}

func report(w io.Writer, results []scenario, closedFrac float64, runs int) {
	fmt.Fprintf(w, "Sweep of one repository's previews, %g %% of the PRs closed unseen; median of %d runs.\n", 100*closedFrac, runs)
	fmt.Fprintf(w, "Floor: one SELECT of the previews + the open PRs listed 100 a page + the Neon branches listed.\n")
	fmt.Fprintf(w, "cold: a new GitHub client (no token, empty ETag cache: after a restart); warm: the same client again (the next sweep).\n\n")
	for _, sc := range results {
		f := sc.floorCold
		fmt.Fprintf(w, "- %d previews: seeded %d PRs in %s, %d Neon branches (real databases) in %s (%.0f ms each), the preview rows in %s; "+
			"cold floor = SELECT %s + open PRs %s + Neon branches %s\n",
			sc.previews, sc.previews, sc.seedGitHub.Round(time.Millisecond), sc.previews, sc.seedNeon.Round(time.Millisecond),
			float64(sc.seedNeon.Milliseconds())/float64(sc.previews), sc.seedRows.Round(time.Millisecond),
			f.parts[0].Round(100*time.Microsecond), f.parts[1].Round(100*time.Microsecond), f.parts[2].Round(100*time.Microsecond))
	}
	type line struct {
		run      string
		m, floor measurement
	}
	lines := func(sc scenario) []line {
		return []line{{"floor, cold", sc.floorCold, sc.floorCold}, {"**sweep, cold**", sc.cold, sc.floorCold},
			{"floor, warm", sc.floorWarm, sc.floorWarm}, {"**sweep, warm**", sc.warm, sc.floorWarm}}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| previews (closed) | run | wall | ÷ floor | GitHub requests (304s) | ÷ floor | rate-limited | of 5,000/h at %d sweeps/h | GitHub bytes | Neon requests | ÷ floor |\n", sweepsPerHour)
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, sc := range results {
		for _, l := range lines(sc) {
			fmt.Fprintf(w, "| %d (%d) | %s | %s | %.2f | %d (%d) | %.1f | %d | %.1f %% | %s | %d | %.2f |\n",
				sc.previews, sc.closed, l.run, l.m.wall.Round(time.Millisecond), ratio(l.m.wall, l.floor.wall),
				l.m.github, l.m.github304, ratio(l.m.github, l.floor.github), l.m.rateLimited(),
				100*float64(sweepsPerHour*l.m.rateLimited())/hourlyLimit, mib(uint64(l.m.received)),
				l.m.neon, ratio(l.m.neon, l.floor.neon))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| previews | run | peak heap | ÷ floor | allocated | ÷ floor |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: |")
	for _, sc := range results {
		for _, l := range lines(sc) {
			fmt.Fprintf(w, "| %d | %s | %s | %.2f | %s | %.2f |\n", sc.previews, l.run,
				mib(l.m.peakHeap), ratio(l.m.peakHeap, l.floor.peakHeap), mib(l.m.allocated), ratio(l.m.allocated, l.floor.allocated))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| previews | heap in use: bot started, nothing seeded | after the sweeps | ratio |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: |")
	for _, sc := range results {
		fmt.Fprintf(w, "| %d | %s | %s | %.2f |\n", sc.previews, mib(sc.heapIdle), mib(sc.heapAfter), ratio(sc.heapAfter, sc.heapIdle))
	}
}

func ratio[T ~int | ~int64 | ~uint64](a, b T) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
