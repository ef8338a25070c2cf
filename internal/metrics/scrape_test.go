package metrics_test

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one read of /metrics, parsed as Prometheus parses it.
type scrape struct {
	t        *testing.T
	body     []byte
	families map[string]*dto.MetricFamily
}

// scrapeURL GETs url as Prometheus does and parses the answer.
func scrapeURL(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return parse(t, body)
}

func parse(t *testing.T, body []byte) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the scrape is not Prometheus' text format: %v\n%s", err, body)
	}
	return scrape{t: t, body: body, families: families}
}

// series are the samples of metric name whose labels include want.
func (s scrape) series(name string, want map[string]string) []*dto.Metric {
	f, ok := s.families[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// sum adds up the values of the matching series of a counter or gauge,
// or their observation counts for a histogram; ok is false when there is
// no such series.
func (s scrape) sum(name string, want map[string]string) (total float64, ok bool) {
	for _, m := range s.series(name, want) {
		ok = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total, ok
}

// value is sum for a series that must exist.
func (s scrape) value(name string, want map[string]string) float64 {
	s.t.Helper()
	v, ok := s.sum(name, want)
	if !ok {
		s.t.Fatalf("no series %s%v in the scrape", name, want)
	}
	return v
}

// labelValues lists the values label takes in metric name.
func (s scrape) labelValues(name, label string) []string {
	seen := map[string]bool{}
	for _, m := range s.series(name, nil) {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				seen[l.GetValue()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
