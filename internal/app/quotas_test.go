package app

import (
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/web"
)

// TestQuotasKeepTheLatest: the overview shows, per installation and
// resource, what GitHub said last, and a reply without a limit keeps the
// limit said before.
func TestQuotasKeepTheLatest(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	q := newQuotas(func() time.Time { return at })
	q.record(9, "core", 4000, 5000)
	q.record(7, "graphql", 10, 5000)
	q.record(9, "core", 3999, 0)
	want := []web.BudgetRow{
		{Installation: 7, Resource: "graphql", Remaining: 10, Limit: 5000, At: at},
		{Installation: 9, Resource: "core", Remaining: 3999, Limit: 5000, At: at},
	}
	got := q.rows()
	if len(got) != len(want) {
		t.Fatalf("rows %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
