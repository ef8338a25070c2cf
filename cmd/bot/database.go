package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/store"
)

// openDatabase connects to the configured database or, when none is
// configured, to a private cluster under the data directory. close releases
// the pool and stops a cluster this process started.
func openDatabase(ctx context.Context, cfg *config.Config, logger zerolog.Logger) (pool *pgxpool.Pool, close func(), err error) {
	url := cfg.Database.URL.Value()
	var cluster *pgcluster.Cluster
	if url == "" {
		dir := filepath.Join(cfg.DataDir, "postgres")
		logger.Info().Str("data_dir", dir).Msg("no database.url configured: using a private PostgreSQL cluster")
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			DataDir: dir,
			Logf:    func(format string, args ...any) { logger.Info().Msgf(format, args...) },
		})
		if err != nil {
			return nil, nil, err
		}
		if err := cluster.CreateDatabase(ctx, "deploybot"); err != nil {
			stopCluster(cluster, logger)
			return nil, nil, err
		}
		url = cluster.URL("deploybot")
	}
	pool, err = store.Open(ctx, url)
	if err != nil {
		if cluster != nil {
			stopCluster(cluster, logger)
		}
		return nil, nil, err
	}
	return pool, func() {
		pool.Close()
		if cluster != nil {
			stopCluster(cluster, logger)
		}
	}, nil
}

func stopCluster(c *pgcluster.Cluster, logger zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		logger.Warn().Err(err).Msg("stopping the private PostgreSQL cluster")
	}
}
