package pipeline

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// A run's full log — every step's whole output, shown and streamed by the
// run's page — is written in batches: a build printing thousands of lines
// a second costs one INSERT per step every logFlushEvery, not one per line,
// and a line reaches the page within that time.
const (
	logFlushEvery = 150 * time.Millisecond
	// logFlushBytes pending in a run starts a flush at once.
	logFlushBytes = 16 << 10
	// logPendingMax pending in a run makes a write flush before it returns:
	// memory stays bounded when the database is slow.
	logPendingMax = 1 << 20
)

// logLimits bound what is stored of a run's log. Past its head, a step
// keeps a rolling tail (where its failure is): the bytes between are
// counted by a marker ("… N bytes cut …"). Once the run as a whole holds
// run bytes, a step keeps past its head only its last least bytes.
type logLimits struct {
	head, tail, run, least int64
}

// defaultLogLimits: 1 MiB a step (a quarter head, the rest tail), 4 MiB a
// run, and a step's last 8 KiB (what its check run shows) whatever the
// other steps wrote.
var defaultLogLimits = logLimits{head: 256 << 10, tail: 768 << 10, run: 4 << 20, least: 8 << 10}

// logStore stores a run's full log; state.Steps is the bot's.
type logStore interface {
	WriteLog(ctx context.Context, run int64, w state.LogWrite) ([]int64, error)
	LogBytes(ctx context.Context, run int64) (int64, error)
}

// runLog collects a run's full log from its steps' Logs and stores it in
// batches, in the order it was written. A failure to store does not stop
// the run (its steps' tails still reach the check run): that batch is
// lost.
type runLog struct {
	ctx    context.Context
	store  logStore
	run    int64
	limits logLimits

	mu      sync.Mutex // guards steps' pending bytes, order, pending
	steps   map[string]*stepLog
	order   []*stepLog // steps with pending bytes, first written first
	pending int

	flushMu sync.Mutex // one flush at a time, so chunks are stored in order
	stored  int64      // bytes of the run's log stored; guarded by flushMu

	kick, full chan struct{}
	stop, done chan struct{}
	closeOnce  sync.Once
}

// stepLog is one step's part of a run's log.
type stepLog struct {
	name string
	// Guarded by runLog.mu.
	pending []byte
	queued  bool // in runLog.order
	ended   bool // the step is over: no rune will complete its bytes
	// Guarded by runLog.flushMu.
	head     int64       // bytes stored before its marker
	marker   *storedLine // where its output was cut; nil while the head has room
	tail     []*storedLine
	tailSize int64
}

// storedLine is a chunk being stored or stored: its id once it is.
type storedLine struct {
	chunk state.LogChunk
	id    int64
	skip  bool // dropped from its batch before it was stored
}

// newRunLog starts collecting run's log (the background flush ends with
// Close). A rescued run counts what its predecessor stored.
func newRunLog(ctx context.Context, store logStore, run int64, limits logLimits) *runLog {
	l := &runLog{ctx: context.WithoutCancel(ctx), store: store, run: run, limits: limits, steps: map[string]*stepLog{},
		kick: make(chan struct{}, 1), full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if n, err := store.LogBytes(l.ctx, run); err == nil {
		l.stored = n
	}
	go l.flusher()
	return l
}

// step returns the writer of step name's output.
func (l *runLog) step(name string) *stepLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.steps[name]
	if !ok {
		s = &stepLog{name: name}
		l.steps[name] = s
	}
	return s
}

// write adds p to step s's output.
func (l *runLog) write(s *stepLog, p []byte) {
	if len(p) == 0 {
		return
	}
	l.mu.Lock()
	s.pending = append(s.pending, p...)
	if !s.queued {
		s.queued = true
		l.order = append(l.order, s)
	}
	l.pending += len(p)
	pending := l.pending
	l.mu.Unlock()
	switch {
	case pending >= logPendingMax:
		l.flush()
	case pending >= logFlushBytes:
		signal(l.full)
	default:
		signal(l.kick) // arms the flusher's timer unless it is armed
	}
}

// endStep stores what step name wrote before its end is recorded, so
// that a page told the step ended has all of its output.
func (l *runLog) endStep(name string) {
	l.mu.Lock()
	if s, ok := l.steps[name]; ok {
		s.ended = true
	}
	l.mu.Unlock()
	l.flush()
}

// Close stores what is left and stops the background flush.
func (l *runLog) Close() {
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		for _, s := range l.steps {
			s.ended = true
		}
		l.mu.Unlock()
		l.flush()
	})
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// flusher stores pending output logFlushEvery after the first byte of it,
// or at once when logFlushBytes are pending.
func (l *runLog) flusher() {
	defer close(l.done)
	t := time.NewTimer(logFlushEvery)
	t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.full:
		case <-l.kick:
			t.Reset(logFlushEvery)
			select {
			case <-l.stop:
				t.Stop()
				return
			case <-t.C:
			case <-l.full:
				t.Stop()
			}
		}
		l.flush()
	}
}

// take removes the pending bytes of every step, in the order the steps
// wrote, keeping back a character cut in two by the end of a write.
func (l *runLog) take() []pendingPart {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []pendingPart
	var keep []*stepLog
	for _, s := range l.order {
		n := len(s.pending)
		if !s.ended {
			n = completeRunes(s.pending)
		}
		if n > 0 {
			parts = append(parts, pendingPart{s, s.pending[:n:n]})
		}
		rest := s.pending[n:]
		s.pending = append([]byte(nil), rest...)
		l.pending -= n
		if len(s.pending) > 0 {
			keep = append(keep, s)
		} else {
			s.queued = false
		}
	}
	l.order = keep
	return parts
}

type pendingPart struct {
	step *stepLog
	data []byte
}

// flush stores the pending output within the limits.
func (l *runLog) flush() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	parts := l.take()
	if len(parts) == 0 {
		return
	}
	var batch []*storedLine
	w := state.LogWrite{Cut: map[int64]int64{}}
	add := func(c state.LogChunk) *storedLine {
		sl := &storedLine{chunk: c}
		batch = append(batch, sl)
		return sl
	}
	stored := l.stored
	for _, p := range parts {
		s, data := p.step, p.data
		if s.marker == nil {
			room := max(min(l.limits.head-s.head, l.limits.run-stored), 0)
			if int64(len(data)) <= room {
				text := logText(data)
				add(state.LogChunk{Step: s.name, Text: text})
				s.head += int64(len(text))
				stored += int64(len(text))
				continue
			}
			cut := runeStart(data, int(room))
			if cut > 0 {
				text := logText(data[:cut])
				add(state.LogChunk{Step: s.name, Text: text})
				s.head += int64(len(text))
				stored += int64(len(text))
			}
			s.marker = add(state.LogChunk{Step: s.name, Marker: true})
			data = data[cut:]
		}
		dropped := int64(0)
		keep := l.limits.tail
		if room := l.limits.run - stored; room < keep {
			keep = max(room, l.limits.least)
		}
		if int64(len(data)) > keep {
			from := runeStart(data, len(data)-int(keep))
			dropped += int64(from)
			data = data[from:]
		}
		text := logText(data)
		line := add(state.LogChunk{Step: s.name, Text: text})
		s.tail = append(s.tail, line)
		s.tailSize += int64(len(text))
		stored += int64(len(text))
		for len(s.tail) > 1 && (s.tailSize > l.limits.tail || stored > l.limits.run) {
			old := s.tail[0]
			s.tail = s.tail[1:]
			n := int64(len(old.chunk.Text))
			s.tailSize -= n
			stored -= n
			dropped += n
			if old.id != 0 {
				w.Drop = append(w.Drop, old.id)
			} else {
				old.skip = true
			}
		}
		if dropped > 0 {
			if s.marker.id != 0 {
				w.Cut[s.marker.id] += dropped
			} else {
				s.marker.chunk.Cut += dropped
			}
		}
	}
	var written []*storedLine
	for _, sl := range batch {
		if !sl.skip {
			written = append(written, sl)
			w.Chunks = append(w.Chunks, sl.chunk)
		}
	}
	ids, err := l.store.WriteLog(l.ctx, l.run, w)
	if err != nil {
		// Lost: forget the chunks of this batch, so none is dropped or
		// counted later as if it had been stored.
		l.forget(batch)
		return
	}
	for i, sl := range written {
		sl.id = ids[i]
	}
	l.stored = stored
}

// forget removes the lines of a batch that could not be stored from the
// steps' bookkeeping; a marker lost with them is made again.
func (l *runLog) forget(batch []*storedLine) {
	lost := map[*storedLine]bool{}
	for _, sl := range batch {
		lost[sl] = true
	}
	l.mu.Lock() // steps may be added meanwhile; their flush side is flushMu's
	steps := make([]*stepLog, 0, len(l.steps))
	for _, s := range l.steps {
		steps = append(steps, s)
	}
	l.mu.Unlock()
	for _, s := range steps {
		kept := s.tail[:0]
		for _, sl := range s.tail {
			if lost[sl] {
				s.tailSize -= int64(len(sl.chunk.Text))
			} else {
				kept = append(kept, sl)
			}
		}
		s.tail = kept
		if s.marker != nil && lost[s.marker] {
			s.marker = nil
			s.head = l.limits.head // keep it cut: the head stays as stored
		}
	}
}

// completeRunes is how many bytes of b end on a character boundary: a
// multi-byte character split by the end of a write waits for its rest.
func completeRunes(b []byte) int {
	for k := 1; k <= utf8.UTFMax && k <= len(b); k++ {
		if utf8.RuneStart(b[len(b)-k]) {
			if !utf8.FullRune(b[len(b)-k:]) {
				return len(b) - k
			}
			break
		}
	}
	return len(b)
}

// runeStart moves i back to the start of the character it falls in.
func runeStart(b []byte, i int) int {
	for j := 0; j < utf8.UTFMax && i > 0 && i < len(b) && !utf8.RuneStart(b[i]); j++ {
		i--
	}
	return i
}

// logText is output as PostgreSQL's text holds it: valid UTF-8 without
// NUL bytes (a binary printed by mistake still shows, as replacement
// characters).
func logText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
