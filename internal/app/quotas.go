package app

import (
	"sort"
	"sync"
	"time"

	"github.com/revelations-studio/deploybot/internal/web"
)

// quotas keeps what GitHub last said of each installation's rate limits
// (github.RateLimits.OnQuota), for the overview page: the metrics have the
// same numbers, but an operator without Prometheus should see them too.
type quotas struct {
	now func() time.Time
	mu  sync.Mutex
	by  map[quotaKey]web.BudgetRow
}

type quotaKey struct {
	installation int64
	resource     string
}

func newQuotas(now func() time.Time) *quotas {
	return &quotas{now: now, by: map[quotaKey]web.BudgetRow{}}
}

// record is an OnQuota hook.
func (q *quotas) record(installation int64, resource string, remaining, limit int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := quotaKey{installation, resource}
	if limit <= 0 {
		limit = q.by[k].Limit // GitHub did not say: keep what it said before
	}
	q.by[k] = web.BudgetRow{Installation: installation, Resource: resource, Remaining: remaining, Limit: limit, At: q.now()}
}

// rows lists them by installation, then resource.
func (q *quotas) rows() []web.BudgetRow {
	q.mu.Lock()
	out := make([]web.BudgetRow, 0, len(q.by))
	for _, r := range q.by {
		out = append(out, r)
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Installation != out[j].Installation {
			return out[i].Installation < out[j].Installation
		}
		return out[i].Resource < out[j].Resource
	})
	return out
}
