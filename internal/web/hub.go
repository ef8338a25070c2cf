package web

import "sync"

// Hub tells the pages streaming a run that it changed. The database says
// so (state.ListenRuns, from any replica) and the hub fans it out to the
// streams of that run in this process. A wake-up carries no data: the
// stream reads what is new, so a wake-up missed or repeated loses nothing.
type Hub struct {
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

// NewHub returns a hub without subscribers.
func NewHub() *Hub { return &Hub{subs: map[int64]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a value after run changes
// (several changes may come as one) and the function that ends the
// subscription.
func (h *Hub) Subscribe(run int64) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[run] == nil {
		h.subs[run] = map[chan struct{}]struct{}{}
	}
	h.subs[run][c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		delete(h.subs[run], c)
		if len(h.subs[run]) == 0 {
			delete(h.subs, run)
		}
		h.mu.Unlock()
	}
}

// Notify wakes the subscribers of run; run 0 wakes every subscriber (after
// the database connection was lost, anything may have changed).
func (h *Hub) Notify(run int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if run != 0 {
		wake(h.subs[run])
		return
	}
	for _, subs := range h.subs {
		wake(subs)
	}
}

func wake(subs map[chan struct{}]struct{}) {
	for c := range subs {
		select {
		case c <- struct{}{}:
		default: // already woken: it reads everything new anyway
		}
	}
}
