package state

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// runsChannel is where the database announces a change of a run, one of
// its steps or its log, with the run's id (migration 00011's triggers).
const runsChannel = "deploybot_runs"

// ListenRuns calls changed with a run's id each time the run, one of its
// steps or its log changes — in this process or in any replica sharing the
// database — until ctx ends. A run's page uses it to stream a run executed
// anywhere.
//
// It holds one connection of its own outside pool (a LISTEN lasts as long
// as its session). When that connection breaks, changes may be missed
// until it is back: it reconnects with backoff and then calls changed(0),
// meaning "any run may have changed", so watchers read again.
func ListenRuns(ctx context.Context, pool *pgxpool.Pool, changed func(run int64)) {
	policy := retry.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; ctx.Err() == nil; {
		attempt++
		listened, _ := listenOnce(ctx, pool, changed)
		if listened {
			attempt = 1 // it worked for a while: start the backoff again
		}
		if retry.Sleep(ctx, policy.Backoff(attempt)) != nil {
			return
		}
	}
}

// listenOnce listens on one connection until it fails; listened reports
// whether it got as far as listening.
func listenOnce(ctx context.Context, pool *pgxpool.Pool, changed func(int64)) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+runsChannel); err != nil {
		return false, err
	}
	changed(0) // what changed while nobody listened is unknown
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if id, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			changed(id)
		}
	}
}
