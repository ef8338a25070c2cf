package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// writeWithin bounds each write of a stream: the server's WriteTimeout
// bounds a whole response, which a stream outlives, so the stream sets a
// deadline of its own before each write instead.
const writeWithin = 30 * time.Second

// runEvents streams run {id} as Server-Sent Events:
//
//	event: step  data: {"name","status","duration","error"}   a step's status changed
//	event: log   id: <chunk id>  data: {"step","text"}          a step wrote output
//	event: end   data: {"status","duration","error"}            the run ended; the stream closes
//
// It first sends every step's status and the log after the chunk given by
// the Last-Event-ID header (a browser reconnecting) or the after parameter
// (the page, which shows the log up to there), then what comes, as the hub
// says the run changed. A run already over gets its steps, the rest of its
// log and its end at once.
func (h *Handler) runEvents(w http.ResponseWriter, r *http.Request) {
	d, ok := h.run(w, r)
	if !ok {
		return
	}
	after, err := cursor(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Subscribed before reading, so a change between the read and the
	// wait still wakes the stream.
	var wake <-chan struct{}
	if h.opts.Hub != nil {
		c, cancel := h.opts.Hub.Subscribe(d.ID)
		defer cancel()
		wake = c
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the client knows it is connected before anything happens
	s := &stream{w: w, rc: rc, sent: map[string]string{}}
	poll := time.NewTicker(h.opts.PollEvery)
	defer poll.Stop()
	ctx := r.Context()
	for {
		// The run is read before its log: when it was over then, the log
		// read next is complete (the run's end is recorded after its log).
		for _, st := range d.Steps {
			s.step(st, h.opts.Now())
		}
		for {
			chunks, err := h.opts.Reader.Log(ctx, d.ID, after, logPage)
			if err != nil {
				h.logStreamError(r, err)
				return
			}
			for _, c := range chunks {
				after = c.ID
				// A marker only counts what a reader of the stored log
				// misses; whoever streams it missed nothing.
				if !c.Marker {
					s.event("log", c.ID, logEvent{Step: c.Step, Text: c.Text})
				}
			}
			if len(chunks) < logPage {
				break
			}
		}
		if d.Ended() {
			s.event("end", 0, endEvent{Status: d.Status, Duration: duration(d.Finished.Sub(d.Started)), Error: d.Error})
		}
		if err := s.flush(); err != nil || d.Ended() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-h.closed:
			return // the client reconnects, to this replica or another
		case <-wake:
		case <-poll.C:
			s.comment("keep-alive") // also tells a proxy the stream is alive
		}
		var found bool
		d, found, err = h.opts.Reader.Run(ctx, d.ID)
		if err != nil || !found {
			h.logStreamError(r, err)
			return
		}
	}
}

// cursor is the last chunk the client has: Last-Event-ID (sent by a
// reconnecting EventSource) wins over the after parameter.
func cursor(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	what := "Last-Event-ID header"
	if v == "" {
		v, what = r.URL.Query().Get("after"), "after parameter"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want the id of the last log chunk received, a number", what, v)
	}
	return n, nil
}

func (h *Handler) logStreamError(r *http.Request, err error) {
	if err != nil && r.Context().Err() == nil {
		h.opts.Logger.Warn().Err(err).Str("path", r.URL.Path).Msg("web: run stream ended by an error")
	}
}

type logEvent struct {
	Step string `json:"step"`
	Text string `json:"text"`
}

type stepEvent struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Duration string `json:"duration,omitempty"`
	Error    string `json:"error,omitempty"`
}

type endEvent struct {
	Status   string `json:"status"`
	Duration string `json:"duration"`
	Error    string `json:"error,omitempty"`
}

// stream writes events to one client.
type stream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	buf  []byte
	sent map[string]string // step → the status last sent
}

// step sends st when its status changed since it was last sent.
func (s *stream) step(st state.Step, now time.Time) {
	if s.sent[st.Name] == st.Status {
		return
	}
	s.sent[st.Name] = st.Status
	ev := stepEvent{Name: st.Name, Status: st.Status, Error: st.Err}
	if !st.Started.IsZero() {
		end := st.Finished
		if end.IsZero() {
			end = now
		}
		ev.Duration = duration(end.Sub(st.Started))
	}
	s.event("step", 0, ev)
}

// event queues an event; id 0 leaves the client's last event id as it is.
func (s *stream) event(name string, id int64, data any) {
	b, _ := json.Marshal(data) // plain structs of strings: cannot fail
	s.buf = fmt.Appendf(s.buf, "event: %s\n", name)
	if id != 0 {
		s.buf = fmt.Appendf(s.buf, "id: %d\n", id)
	}
	s.buf = fmt.Appendf(s.buf, "data: %s\n\n", b) // JSON has no raw newline
}

func (s *stream) comment(text string) {
	s.buf = fmt.Appendf(s.buf, ": %s\n\n", text)
}

// flush sends what is queued.
func (s *stream) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeWithin))
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	s.buf = s.buf[:0]
	return s.rc.Flush()
}
