package pipeline

import (
	"github.com/riverqueue/river"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// registerProduction adds the production deploy worker (ProductionPush).
func registerProduction(workers *river.Workers, p *previews) {
	river.AddWorker(workers, &Recorder[intent.ProductionPush]{pool: p.deps.Pool, logger: p.deps.Logger})
}
