package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Transport returns next counting each request it sends to api by what
// the request was for (its route class or operation) and the status of
// the answer, and timing it to the answer's headers. Put it at the bottom
// of a client's transport chain, under its retries and caches, so that
// every attempt that reaches the network is counted once. A nil next is
// http.DefaultTransport.
func (m *Metrics) Transport(api API, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next, api: api, requests: m.requests[api], took: m.requestDuration[api]}
}

// Client returns a copy of base (nil: a new client) whose requests are
// counted as api's (Transport).
func (m *Metrics) Client(api API, base *http.Client) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	c.Transport = m.Transport(api, c.Transport)
	return c
}

type transport struct {
	next     http.RoundTripper
	api      API
	requests *prometheus.CounterVec
	took     *prometheus.HistogramVec
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	what := t.api.classify(r)
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.took.WithLabelValues(what).Observe(time.Since(start).Seconds())
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.requests.WithLabelValues(what, code).Inc()
	return resp, err
}
