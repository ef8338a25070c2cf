package pipeline

import (
	"github.com/riverqueue/river"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// registerTests adds the test-run workers (TestRequested, CheckSuiteRequested).
func registerTests(workers *river.Workers, p *previews) {
	river.AddWorker(workers, &Recorder[intent.TestRequested]{pool: p.deps.Pool, logger: p.deps.Logger})
	river.AddWorker(workers, &Recorder[intent.CheckSuiteRequested]{pool: p.deps.Pool, logger: p.deps.Logger})
}
