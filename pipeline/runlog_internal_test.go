package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// numbered is n lines of output, each naming its number.
func numbered(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %05d of the build's output\n", i)
	}
	return b.String()
}

// writeInPieces writes s to w in random pieces, as a command's output
// arrives.
func writeInPieces(w func([]byte), s string, seed uint64) int {
	r := rand.New(rand.NewPCG(seed, 1))
	writes := 0
	for len(s) > 0 {
		n := min(1+r.IntN(3000), len(s))
		w([]byte(s[:n]))
		s = s[n:]
		writes++
	}
	return writes
}

// A step's whole output is stored, beyond the 8 KiB tail the check run
// gets, in batches rather than a row per write.
func TestExecuteKeepsTheWholeOutput(t *testing.T) {
	rec := newMemSteps()
	out := numbered(5000) // about 160 KiB
	var writes int
	steps := []Step{{Name: "build:web", Do: func(ctx context.Context, log *Log) error {
		writes = writeInPieces(func(p []byte) { log.Write(p) }, out, 1)
		return nil
	}}}
	states, err := execute(t.Context(), rec, 1, steps, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.log("build:web"); got != out {
		t.Fatalf("stored %d bytes of the step's %d, or not in order", len(got), len(out))
	}
	if len(states[0].Log) != maxLogTail || !strings.HasSuffix(out, states[0].Log) {
		t.Fatalf("the step's tail is %d bytes, want the last %d", len(states[0].Log), maxLogTail)
	}
	if len(rec.chunks) >= writes {
		t.Fatalf("%d chunks for %d writes: the log is not written in batches", len(rec.chunks), writes)
	}
}

// Past its bound, a step keeps its head and its latest output, and says
// how much was cut between them; nothing else is lost or repeated.
func TestRunLogKeepsHeadAndTail(t *testing.T) {
	rec := newMemSteps()
	l := newRunLog(t.Context(), rec, 1, logLimits{head: 1000, tail: 3000, run: 1 << 20, least: 100})
	s := l.step("test:unit")
	out := numbered(2000)
	writeInPieces(func(p []byte) { l.write(s, p) }, out, 2)
	l.Close()

	m := regexp.MustCompile(`(?s)^(.*)\[cut (\d+)\](.*)$`).FindStringSubmatch(rec.log("test:unit"))
	if m == nil {
		t.Fatalf("no cut marker in the stored log of %d bytes", len(out))
	}
	head, tail := m[1], m[3]
	cut, _ := strconv.Atoi(m[2])
	if !strings.HasPrefix(out, head) || len(head) > 1000 || len(head) < 1000-3 {
		t.Errorf("head: %d bytes, want the first 1000 of the output", len(head))
	}
	if !strings.HasSuffix(out, tail) || len(tail) == 0 || len(tail) > 3000 {
		t.Errorf("tail: %d bytes, want the output's last at most 3000", len(tail))
	}
	if len(head)+cut+len(tail) != len(out) {
		t.Errorf("head %d + cut %d + tail %d bytes ≠ the output's %d", len(head), cut, len(tail), len(out))
	}
}

// A run's steps share its bound: once the run holds it, a step keeps only
// its head's share and its latest chunk.
func TestRunLogBoundsTheRun(t *testing.T) {
	rec := newMemSteps()
	lim := logLimits{head: 4000, tail: 1 << 20, run: 10000, least: 1000}
	l := newRunLog(t.Context(), rec, 1, lim)
	for i := range 5 {
		s := l.step("step" + strconv.Itoa(i))
		writeInPieces(func(p []byte) { l.write(s, p) }, numbered(1000), uint64(i))
		l.endStep(s.name)
	}
	l.Close()
	stored, _ := rec.LogBytes(t.Context(), 1)
	// Each step keeps at least its last 1000 bytes.
	if stored > lim.run+5*lim.least {
		t.Fatalf("the run stores %d bytes, bound %d", stored, lim.run)
	}
	for i := range 5 {
		if got := rec.log("step" + strconv.Itoa(i)); !strings.Contains(got, "[cut ") || !strings.HasSuffix(got, "line 00999 of the build's output\n") {
			t.Errorf("step%d: no cut marker, or not its last line: %q…", i, got[:min(80, len(got))])
		}
	}
}

// Text is stored as PostgreSQL's text holds it: a character split by the
// end of a write is whole, a NUL byte and invalid UTF-8 are replaced.
func TestRunLogStoresText(t *testing.T) {
	rec := newMemSteps()
	l := newRunLog(t.Context(), rec, 1, defaultLogLimits)
	s := l.step("build")
	l.write(s, []byte("caf\xc3"))
	l.flush() // the split character waits for its rest
	l.write(s, []byte("\xa9 \x00 \xff\n"))
	l.Close()
	if got, want := rec.log("build"), "café \uFFFD \uFFFD\n"; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
}

// A line reaches the store within logFlushEvery, without waiting for more
// output or the step's end.
func TestRunLogFlushesOnItsOwn(t *testing.T) {
	rec := &notifySteps{memSteps: newMemSteps(), wrote: make(chan struct{}, 1)}
	l := newRunLog(t.Context(), rec, 1, defaultLogLimits)
	defer l.Close()
	l.write(l.step("build"), []byte("compiling…\n"))
	<-rec.wrote // no flush, no Close: the flusher's own timer stores it
	if got := rec.log("build"); got != "compiling…\n" {
		t.Fatalf("stored %q", got)
	}
}

type notifySteps struct {
	*memSteps
	wrote chan struct{}
}

func (n *notifySteps) WriteLog(ctx context.Context, run int64, w state.LogWrite) ([]int64, error) {
	ids, err := n.memSteps.WriteLog(ctx, run, w)
	signal(n.wrote)
	return ids, err
}

// A batch the database refused is lost, and only it: what comes after is
// stored, and nothing is dropped or counted that was never stored.
func TestRunLogSurvivesAFailedWrite(t *testing.T) {
	rec := &failingSteps{memSteps: newMemSteps(), fail: 1}
	l := newRunLog(t.Context(), rec, 1, logLimits{head: 100, tail: 200, run: 1 << 20, least: 10})
	s := l.step("build")
	l.write(s, []byte(strings.Repeat("a", 150)+"\n")) // head, marker and tail in one batch
	l.flush()                                         // refused
	for i := range 20 {
		l.write(s, []byte(fmt.Sprintf("line %02d of the rest\n", i)))
		l.flush()
	}
	l.Close()
	got := rec.log("build")
	if !strings.HasPrefix(got, "[cut ") || !strings.HasSuffix(got, "line 19 of the rest\n") {
		t.Fatalf("after a refused batch the log is %q: want a marker, then the latest lines", got)
	}
	for _, id := range rec.dropped {
		if id <= 0 || id > rec.lastID {
			t.Fatalf("dropped chunk %d, which was never stored", id)
		}
	}
}

// failingSteps refuses its first fail writes of a log.
type failingSteps struct {
	*memSteps
	fail    int
	dropped []int64
}

func (f *failingSteps) WriteLog(ctx context.Context, run int64, w state.LogWrite) ([]int64, error) {
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("the database is gone")
	}
	f.dropped = append(f.dropped, w.Drop...)
	return f.memSteps.WriteLog(ctx, run, w)
}
