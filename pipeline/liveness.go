package pipeline

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Liveness is how bot processes sharing a database notice that one of them
// died. Each writes a heartbeat; any of them rescues the jobs a silent
// process left in the running state, so a crashed or killed bot's work
// resumes within seconds (the jobs converge: their steps are idempotent and
// a sync concludes the check runs of abandoned runs) rather than after
// River's stuck-job timeout, which must exceed the longest legitimate run.
type Liveness struct {
	clients  state.Clients
	clientID string
	logger   zerolog.Logger
	// Every is the heartbeat period; DeadAfter how long a silent process
	// is given before its jobs are rescued.
	Every, DeadAfter time.Duration
}

// NewLiveness tracks the River client clientID.
func NewLiveness(pool *pgxpool.Pool, clientID string, logger zerolog.Logger) *Liveness {
	return &Liveness{clients: state.New(pool).Clients, clientID: clientID, logger: logger, Every: 5 * time.Second, DeadAfter: 30 * time.Second}
}

// Beat records that this process is alive.
func (l *Liveness) Beat(ctx context.Context) error {
	return l.clients.Beat(ctx, l.clientID)
}

// RescueDead makes the running jobs of silent processes available again
// (or discards those out of attempts, as River's own rescuer does) and
// returns how many it rescued.
func (l *Liveness) RescueDead(ctx context.Context) (int, error) {
	n, err := l.clients.RescueDead(ctx, l.clientID, l.DeadAfter)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		l.logger.Warn().Int("jobs", n).Msg("rescued jobs of a bot process that stopped")
		return n, nil
	}
	return 0, nil
}

// Run beats and rescues until ctx ends, then removes this process's row so
// that others do not wait for it.
func (l *Liveness) Run(ctx context.Context) {
	t := time.NewTicker(l.Every)
	defer t.Stop()
	// App.Start beat and rescued just before: rescue on every tick, as
	// long as no beat fails.
	beats := beating{start: time.Now().Add(-l.DeadAfter)}
	for {
		select {
		case <-ctx.Done():
			_ = l.clients.Leave(context.Background(), l.clientID)
			return
		case <-t.C:
		}
		err := l.Beat(ctx)
		if err != nil && ctx.Err() == nil {
			l.logger.Warn().Err(err).Msg("liveness heartbeat")
		}
		if !beats.rescueAfter(time.Now(), err == nil, l.DeadAfter) {
			continue
		}
		if _, err := l.RescueDead(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn().Err(err).Msg("liveness rescue")
		}
	}
}

// beating tracks this process's own unbroken run of heartbeats. When the
// database was out of reach (restarted, a partition), every process's
// heartbeat stopped alike, and one whose beats resume first would take the
// others' silence for death and rescue jobs they are still working. So a
// process rescues only once its own heartbeat has gone unbroken for
// DeadAfter: the others, if alive, have beaten again by then.
type beating struct {
	start time.Time // of the unbroken run of beats; zero while beats fail
}

// rescueAfter records a beat at now, succeeded or not, and reports whether
// to rescue dead processes' jobs after it: only when the beats have gone
// unbroken for deadAfter.
func (b *beating) rescueAfter(now time.Time, succeeded bool, deadAfter time.Duration) bool {
	switch {
	case !succeeded:
		b.start = time.Time{}
		return false
	case b.start.IsZero():
		b.start = now
	}
	return now.Sub(b.start) >= deadAfter
}
