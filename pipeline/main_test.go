package pipeline

import (
	"os"
	"testing"

	"github.com/revelations-studio/deploybot/internal/pgtest"
)

// TestMain starts the PostgreSQL server the end-to-end tests share (or
// uses the one given); the engine's own tests need none.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
