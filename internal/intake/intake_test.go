package intake_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intake"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/pipeline"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func newStore(t *testing.T) (*intake.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewDatabase(t)
	queue, err := pipeline.NewQueue(pool, pipeline.QueueOptions{Workers: 1, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return intake.New(pool, queue), pool
}

func push(id string, n int) intent.Intent {
	return intent.PreviewRequested{
		Meta: intent.Meta{DeliveryID: id, Event: "pull_request", Action: "synchronize", InstallationID: 1,
			Repo: intent.Repo{ID: 1, Owner: "acme", Name: "app"}},
		PR: intent.PullRequest{Number: n, HeadSHA: strings.Repeat("a", 40)},
	}
}

func comment(id string, commentID int64) intent.Intent {
	return intent.CommentCommand{
		Meta: intent.Meta{DeliveryID: id, Event: "issue_comment", Action: "created", InstallationID: 1,
			Repo: intent.Repo{ID: 1, Owner: "acme", Name: "app"}},
		PR: 1, CommentID: commentID, Author: "octocat", Body: "/deploy",
	}
}

// unregistered is a kind no worker handles: River refuses to queue it, so
// its delivery cannot be stored.
type unregistered struct {
	intent.Meta
}

func (unregistered) Kind() string { return "unregistered" }

// TestManyAtOnce: deliveries arriving together, with redeliveries of the
// same id and copies of the same comment under other ids among them, and
// one that cannot be queued. Every distinct event is stored with exactly
// one job; each copy is answered as a duplicate of that job; the bad one
// fails alone. Whatever the batches turn out to be, the answers are the
// ones one transaction per delivery would give.
func TestManyAtOnce(t *testing.T) {
	s, pool := newStore(t)
	ctx := t.Context()
	type sent struct {
		in     intent.Intent
		event  string // what makes copies one event
		bad    bool
		answer intake.Receipt
		err    error
	}
	var all []*sent
	for i := range 150 {
		id := fmt.Sprintf("d-%d", i)
		all = append(all, &sent{in: push(id, i), event: id})
		if i%10 == 0 {
			all = append(all, &sent{in: push(id, i), event: id}) // redelivered
		}
		if i%15 == 0 {
			c := int64(1000 + i)
			ev := fmt.Sprintf("comment-%d", c)
			all = append(all, &sent{in: comment(fmt.Sprintf("c-%d-a", i), c), event: ev},
				&sent{in: comment(fmt.Sprintf("c-%d-b", i), c), event: ev}) // one comment, two delivery ids
		}
	}
	all = append(all, &sent{in: unregistered{Meta: intent.Meta{DeliveryID: "bad", Event: "ping", Repo: intent.Repo{Owner: "acme", Name: "app"}}}, bad: true})

	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, x := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			x.answer, x.err = s.Accept(ctx, x.in)
		}()
	}
	close(start)
	wg.Wait()

	jobOf := map[string]int64{}
	firsts := map[string]int{}
	for _, x := range all {
		if x.bad {
			if x.err == nil {
				t.Error("the delivery that cannot be queued was accepted")
			}
			continue
		}
		if x.err != nil {
			t.Fatalf("delivery %s: %v", x.in.Delivery().DeliveryID, x.err)
		}
		if x.answer.JobID == 0 {
			t.Fatalf("delivery %s: no job in %+v", x.in.Delivery().DeliveryID, x.answer)
		}
		if j, ok := jobOf[x.event]; ok && j != x.answer.JobID {
			t.Errorf("event %s: jobs %d and %d", x.event, j, x.answer.JobID)
		}
		jobOf[x.event] = x.answer.JobID
		if !x.answer.Duplicate {
			firsts[x.event]++
		}
	}
	for ev := range jobOf {
		if firsts[ev] != 1 {
			t.Errorf("event %s: %d deliveries answered as the first, want 1", ev, firsts[ev])
		}
	}
	var jobs, deliveries, unlinked int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE job_id IS NULL) FROM deliveries`).Scan(&deliveries, &unlinked); err != nil {
		t.Fatal(err)
	}
	if jobs != len(jobOf) || unlinked != 0 {
		t.Errorf("%d jobs for %d events, %d deliveries without a job", jobs, len(jobOf), unlinked)
	}
	var bad int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE delivery_id = 'bad'`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("the failed delivery was stored (%d, %v): GitHub would get 500 for a delivery the bot keeps", bad, err)
	}
}

// TestAloneAndAgain: one delivery at a time is stored at once, and its
// redelivery later is a duplicate of its job.
func TestAloneAndAgain(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	first, err := s.Accept(ctx, push("one", 1))
	if err != nil || first.Duplicate || first.JobID == 0 {
		t.Fatalf("first: %+v, %v", first, err)
	}
	again, err := s.Accept(ctx, push("one", 1))
	if err != nil || !again.Duplicate || again.JobID != first.JobID {
		t.Fatalf("redelivery: %+v, %v; want a duplicate of job %d", again, err, first.JobID)
	}
	if _, err := s.Accept(ctx, push("", 1)); err == nil {
		t.Fatal("a delivery without an id was accepted")
	}
}

// TestCancelledRequestStillStored: a request that gives up while its
// delivery waits is still stored, so that the sender's redelivery finds
// it; the others are not held up.
func TestCancelledRequestStillStored(t *testing.T) {
	s, pool := newStore(t)
	ctx := t.Context()
	gone, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Accept(gone, push("gone", 1))
	if err == nil {
		// Stored before the cancellation was seen: allowed.
		t.Log("stored before the cancellation was noticed")
	}
	r, err := s.Accept(ctx, push("next", 2))
	if err != nil || r.JobID == 0 {
		t.Fatalf("the next delivery: %+v, %v", r, err)
	}
	again, err := s.Accept(ctx, push("gone", 1))
	if err != nil || again.JobID == 0 {
		t.Fatalf("redelivery of the cancelled one: %+v, %v", again, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE delivery_id = 'gone'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows for the cancelled delivery, %v", n, err)
	}
}

// TestNoDeliveryIsStranded: many deliveries at once, a third of whose
// requests give up at once or midway. Every request returns, every one not
// cancelled is stored, and the store still answers afterwards: the lead of
// committing never stays with a request that went away.
func TestNoDeliveryIsStranded(t *testing.T) {
	s, pool := newStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const n = 3000
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			<-start
			switch i % 3 {
			case 1:
				rcancel() // gone before it starts
			case 2:
				go func() { runtime.Gosched(); rcancel() }() // gone midway
			}
			_, errs[i] = s.Accept(rctx, push(fmt.Sprintf("s-%d", i), i))
		}()
	}
	close(start)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("requests were left waiting")
	}
	for i, err := range errs {
		if i%3 == 0 && err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	r, err := s.Accept(ctx, push("after", 1))
	if err != nil || r.JobID == 0 {
		t.Fatalf("after the storm: %+v, %v", r, err)
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM deliveries`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored < n/3+1 {
		t.Fatalf("%d deliveries stored, want at least the %d not cancelled", stored, n/3+1)
	}
}
