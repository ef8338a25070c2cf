package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// TestSurvivesKills runs the real binary against the sandbox and SIGKILLs it
// at random moments while pull requests are opened, pushed to and closed:
// one replica (every restart finds the work of a dead process), and two
// replicas behind a load balancer sharing the database (the live one takes
// over a killed one's jobs). After the last restart the bot must have
// converged: every check run concluded, one status comment per PR, previews
// exactly for the open PRs at their newest commits, nothing left of the
// closed ones, and no delivery worked twice.
func TestSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	t.Run("one replica", func(t *testing.T) { survivesKills(t, 1) })
	t.Run("two replicas", func(t *testing.T) { survivesKills(t, 2) })
}

func survivesKills(t *testing.T, replicas int) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := newFarm(ctx, t, "kill-test-secret")
	gh := f.gh
	_, dbURL := pgtest.NewDatabaseURL(t)
	var bots []*botProcess
	var addrs []string
	for i := range replicas {
		b := f.bot(fmt.Sprint(i), dbURL)
		b.start(ctx)
		t.Cleanup(b.stop)
		bots, addrs = append(bots, b), append(addrs, b.addr)
	}
	lb := httptest.NewServer(balancer(addrs))
	t.Cleanup(lb.Close)
	hook := lb.URL + "/api/github/hook"
	waitAnyReady := func() {
		t.Helper()
		for ctx.Err() == nil {
			for _, b := range bots {
				if b.ready() {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no replica became ready")
	}

	// deliver sends an event; while no replica is up, GitHub would show a
	// failed delivery and someone (or the bot's own catch-up) redelivers
	// the same id until it is taken.
	deliver := func(ev ghsim.Event) {
		t.Helper()
		d, err := gh.Deliver(ctx, hook, ev)
		for tries := 0; d.Status != http.StatusOK && d.Status != http.StatusAccepted; tries++ {
			if d.ID == "" || tries > 100 {
				t.Fatalf("delivery never taken: %+v, %v", d, err)
			}
			waitAnyReady()
			d, err = gh.Redeliver(ctx, d.ID)
		}
	}

	// The killer: SIGKILL at random moments, restart at once.
	var kills atomic.Int32
	killerDone := make(chan struct{})
	stopKilling := make(chan struct{})
	go func() {
		defer close(killerDone)
		rng := rand.New(rand.NewPCG(7, 11))
		for {
			select {
			case <-stopKilling:
				return
			// Long enough apart that runs (about a second each) can finish
			// between kills, short enough to hit every phase of them.
			case <-time.After(time.Duration(200+rng.IntN(2300)) * time.Millisecond):
			}
			b := bots[rng.IntN(len(bots))]
			b.kill()
			kills.Add(1)
			b.start(ctx)
		}
	}()

	// Three PRs through their lives, twice over, while the killer works.
	prs := f.openPRs("kill", 3)
	event := func(pr int, action string) {
		ev, err := gh.PullRequestEvent(demo.Repo, pr, action)
		if err != nil {
			t.Fatal(err)
		}
		deliver(ev)
	}
	for round := range 3 {
		for _, pr := range prs {
			if round == 0 {
				event(pr, "opened")
				continue
			}
			if _, err := gh.PushPR(demo.Repo, pr, map[string]string{"web/src/k.js": fmt.Sprintf("%d-%d\n", pr, round)}, "more"); err != nil {
				t.Fatal(err)
			}
			event(pr, "synchronize")
		}
	}
	closed := prs[1]
	if _, err := gh.ClosePR(demo.Repo, closed, false); err != nil {
		t.Fatal(err)
	}
	event(closed, "closed")
	// Keep killing while the work goes on, and poke the bot now and then
	// with a synchronize it has seen (as a redelivery or a re-sync would).
	for kills.Load() < 30 {
		event(prs[0], "synchronize")
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			t.Fatal("timed out before 30 kills")
		}
	}
	close(stopKilling)
	<-killerDone
	for _, b := range bots {
		b.waitReady(ctx)
	}
	waitIdle(ctx, t, dbURL, bots)
	t.Logf("%d kills of %d replicas", kills.Load(), replicas)

	f.expectConverged(prs)
	// A check run a killed process opened is concluded by the next run of
	// its PR or branch, or else by the sweep (at start-up and every
	// interval): run one now, as the next interval would.
	for _, c := range gh.Snapshot().CheckRuns {
		if c.Status != "completed" {
			t.Logf("check run %s@%.7s is %s: left to the sweep", c.Name, c.HeadSHA, c.Status)
		}
	}
	sweep := exec.CommandContext(ctx, f.bin, "sweep", "--config", bots[0].cfg, "--check-grace", "0s")
	sweep.Env = append(os.Environ(), bots[0].env...)
	if out, err := sweep.CombinedOutput(); err != nil {
		t.Fatalf("bot sweep: %v\n%s", err, out)
	} else {
		t.Logf("bot sweep:\n%s", out)
	}
	f.expectCheckRunsConcluded()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	expectEachDeliveryWorkedOnce(ctx, t, conn)
	if t.Failed() {
		rows, _ := conn.Query(ctx, `SELECT pr_number, state, comment_id, resources::text FROM previews`)
		for rows.Next() {
			var pr int
			var state, res string
			var cid int64
			_ = rows.Scan(&pr, &state, &cid, &res)
			t.Logf("preview pr %d %s comment %d %.100s", pr, state, cid, res)
		}
		logRuns(ctx, t, conn, bots)
	}
}

// balancer spreads requests over the replicas in turn, as a load balancer in
// front of them would, and tries the next replica when one does not answer
// (it is down, or was killed while handling the request).
func balancer(addrs []string) http.Handler {
	var next atomic.Uint32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		first := int(next.Add(1))
		for i := range addrs {
			addr := addrs[(first+i)%len(addrs)]
			req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			req.Header = r.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			resp.Body.Close()
			return
		}
		http.Error(w, "no replica answered", http.StatusBadGateway)
	})
}

type botProcess struct {
	t    *testing.T
	bin  string
	cfg  string
	addr string
	env  []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (b *botProcess) start(ctx context.Context) {
	logFile, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Error(err)
		return
	}
	cmd := exec.Command(b.bin, "serve", "--config", b.cfg)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, b.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.t.Error(err)
		return
	}
	logFile.Close()
	b.cmd, b.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(b.done)
}

func (b *botProcess) kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	b.cmd = nil
}

func (b *botProcess) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		b.kill()
	}
	b.cmd = nil
}

// ready asks the bot's readiness probe, as a load balancer would.
func (b *botProcess) ready() bool {
	resp, err := http.Get("http://" + b.addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady polls the bot's readiness probe until it answers 200.
func (b *botProcess) waitReady(ctx context.Context) {
	for ctx.Err() == nil {
		if b.ready() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatal("the bot never became ready")
}

// waitIdle polls the bots' database until no job is left to work.
func waitIdle(ctx context.Context, t *testing.T, dbURL string, bots []*botProcess) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for ctx.Err() == nil {
		var busy int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'pending', 'scheduled') AND kind <> 'sweep'`).Scan(&busy)
		if err == nil && busy == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := conn.Query(context.Background(), `SELECT id, kind, state, attempt, coalesce(array_to_string(attempted_by, ','), ''), errors::text FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')`)
	if err == nil {
		for rows.Next() {
			var id int64
			var kind, state, by, errs string
			var attempt int
			_ = rows.Scan(&id, &kind, &state, &attempt, &by, &errs)
			t.Logf("job %d %s %s attempt %d by %s errors %.300s", id, kind, state, attempt, by, errs)
		}
	}
	for _, b := range bots {
		log, _ := os.ReadFile(b.log)
		t.Logf("%s (tail):\n%s", filepath.Base(b.log), tail(string(log), 3000/len(bots)))
	}
	t.Fatal("the bots never finished their work")
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
