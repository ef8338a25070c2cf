package store_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

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

// TestOpenGivesUpOnASilentServer: a server that accepts connections but
// never answers (as through a network partition) is given up on by the
// connect timeout, not waited for as long as the caller's context allows.
func TestOpenGivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := store.Open(ctx, "postgres://u:p@"+ln.Addr().String()+"/db?sslmode=disable")
	if err == nil {
		pool.Close()
		t.Fatal("Open succeeded against a server that never answers")
	}
	if ctx.Err() != nil {
		t.Fatalf("Open waited for the caller's context: %v", err)
	}
}
