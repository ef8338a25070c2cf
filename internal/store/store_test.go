package store_test

import (
	"context"
	"os"
	"testing"

	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewDatabase(t) // already migrated up by the template

	st, err := store.MigrationStatus(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Current() {
		t.Fatalf("fresh database not current: river %d/%d, bot pending %d", st.RiverVersion, st.RiverLatest, st.BotPending)
	}

	// Up again is a no-op.
	applied, err := store.MigrateUp(ctx, pool)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second MigrateUp: applied %v, err %v", applied, err)
	}

	// Down rolls back the newest bot migration and only that.
	rolled, err := store.MigrateDown(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if rolled == "" {
		t.Fatal("MigrateDown rolled back nothing")
	}
	st, err = store.MigrationStatus(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current() || st.BotPending != 1 || st.RiverVersion != st.RiverLatest {
		t.Fatalf("after down: river %d/%d, bot pending %d", st.RiverVersion, st.RiverLatest, st.BotPending)
	}

	applied, err = store.MigrateUp(ctx, pool)
	if err != nil || len(applied) != 1 {
		t.Fatalf("MigrateUp after down: applied %v, err %v", applied, err)
	}
}
