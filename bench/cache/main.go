// Command cache measures what setup.cache saves a preview. The sample app
// gets a setup command that "installs" a dependency tree the way a package
// manager fills node_modules (2,000 packages, each a folder with files,
// written by the command itself) unless it finds it installed, and a
// setup.cache keyed by the lockfile. A pull request is previewed twice:
// its first commit (nothing cached), then a second commit with the same
// lockfile (the tree is restored from the cache). For each it reports the
// setup step and the builds (which wait for setup), read from the run's
// recorded steps, and the ratio of the first to the second.
//
//	go run ./bench/cache
//
// It uses $DATABASE_URL (a superuser URL) or starts a private PostgreSQL.
// The install is synthetic (no registry is reachable here): its cost is
// writing many small files, which is what restoring from the cache saves.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
)

// install fills node_modules unless the lockfile's tree is already there.
const install = `set -eu
if [ -f node_modules/.installed ] && cmp -s node_modules/.installed pnpm-lock.yaml; then
  echo "node_modules up to date"
  exit 0
fi
mkdir -p node_modules
i=0
while [ $i -lt 2000 ]; do
  mkdir -p node_modules/pkg-$i/lib
  printf 'module.exports = %d;\n' $i > node_modules/pkg-$i/index.js
  printf '{"name":"pkg-%d","version":"1.0.%d"}\n' $i $i > node_modules/pkg-$i/package.json
  i=$((i + 1))
done
cp pnpm-lock.yaml node_modules/.installed
echo "installed 2000 packages"
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type timing struct {
	name          string
	setup, builds time.Duration
	cache         string
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "deploybot-bench-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	admin, cluster, stop, err := pgcluster.Server(ctx, os.Getenv("DATABASE_URL"), filepath.Join(dir, "pg"))
	if err != nil {
		return err
	}
	defer stop()
	botURL := admin
	if cluster != nil {
		if err := cluster.CreateDatabase(ctx, "bench_cache"); err != nil {
			return err
		}
		botURL = cluster.URL("bench_cache")
	}
	s, err := demo.StartStack(ctx, demo.StackOptions{AdminURL: admin, DatabaseURL: botURL, DataDir: filepath.Join(dir, "data"), Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	defer s.Close()
	gh := s.Sandbox.GitHub
	files, err := s.SampleFiles()
	if err != nil {
		return err
	}
	pipeline := strings.Replace(files[".github/deploybot.yml"], "setup:\n  run: sh scripts/setup.sh\n",
		"setup:\n  run: sh scripts/setup.sh\n  cache: {key: [pnpm-lock.yaml], paths: [node_modules]}\n", 1)
	if _, err := gh.Commit(demo.Repo, "main", map[string]string{".github/deploybot.yml": pipeline}, "cache"); err != nil {
		return err
	}
	if _, err := gh.Commit(demo.Repo, "bench", map[string]string{"scripts/setup.sh": install, "pnpm-lock.yaml": "lockfileVersion: 9\n"}, "deps"); err != nil {
		return err
	}
	pr, err := gh.OpenPR(demo.Repo, "bench", "main", "bench", false, false)
	if err != nil {
		return err
	}
	preview := func(action string) (timing, error) {
		ev, err := gh.PullRequestEvent(demo.Repo, pr, action)
		if err != nil {
			return timing{}, err
		}
		if _, err := s.Deliver(ctx, ev); err != nil {
			return timing{}, err
		}
		if err := s.WaitIdle(ctx); err != nil {
			return timing{}, err
		}
		return measure(ctx, s)
	}
	cold, err := preview("opened")
	if err != nil {
		return err
	}
	cold.name = "first commit (nothing cached)"
	if _, err := gh.PushPR(demo.Repo, pr, map[string]string{"web/src/b.js": "2\n"}, "change, same lockfile"); err != nil {
		return err
	}
	warm, err := preview("synchronize")
	if err != nil {
		return err
	}
	warm.name = "second commit, same lockfile"

	fmt.Printf("setup (2,000 packages) and builds of a preview of the sample app (3 Workers), with setup.cache\n\n")
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "preview\tcache\tsetup\tbuilds after setup\tsetup + builds\tspeed-up\t")
	for _, t := range []timing{cold, warm} {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%.1f×\t\n", t.name, t.cache, t.setup.Round(time.Millisecond), t.builds.Round(time.Millisecond),
			(t.setup + t.builds).Round(time.Millisecond), float64(cold.setup+cold.builds)/float64(t.setup+t.builds))
	}
	return w.Flush()
}

// measure reads the newest preview run's setup step and its builds (the
// longest, as they run in parallel), and what the setup step's log says
// of the cache.
func measure(ctx context.Context, s *demo.Stack) (timing, error) {
	var t timing
	rows, err := s.App.Pool.Query(ctx, `
		SELECT st.name, extract(epoch FROM st.finished_at - st.started_at), st.log_tail, st.status
		FROM run_steps st WHERE st.run_id = (SELECT max(id) FROM runs WHERE kind = 'preview')
		  AND (st.name = 'setup' OR st.name LIKE 'build:%')`)
	if err != nil {
		return t, err
	}
	defer rows.Close()
	for rows.Next() {
		var name, log, status string
		var secs float64
		if err := rows.Scan(&name, &secs, &log, &status); err != nil {
			return t, err
		}
		if status != "succeeded" {
			return t, fmt.Errorf("step %s %s: %s", name, status, log)
		}
		d := time.Duration(secs * float64(time.Second))
		switch {
		case name == "setup":
			t.setup = d
			t.cache = "miss"
			if strings.Contains(log, "restored") {
				t.cache = "hit"
			}
		case d > t.builds:
			t.builds = d
		}
	}
	return t, rows.Err()
}
