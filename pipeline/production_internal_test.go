package pipeline

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/workspace"
)

// The production plan, run on the ports' in-memory fakes: what a merge
// leaves live, in which order Workers go up, and what a failure undoes.
// The sandbox's TestProduction* tests run the same flow end to end.

const prodRepo = "acme/shop"

// prodYAML: web binds api, so api goes up first.
const prodYAML = `version: 1
database:
  project: proj
  parent: production
workers:
  - name: web
    script: shop-web
    hostname: shop.example.com
    main: web/index.js
    compatibility_date: "2025-01-01"
    services: [{binding: API, worker: api}]
  - name: api
    script: shop-api
    hostname: api.example.com
    main: api/index.js
    compatibility_date: "2025-01-01"
production:
  enabled: true
`

func TestProductionPlan(t *testing.T) {
	otherRepo := []string{tagBot, tagRepo + "someone/else", tagEnv + productionScope}
	cases := []struct {
		name string
		// existing Workers before the merge, with their tags.
		existing map[string][]string
		hosts    map[string]string // hostname → Worker, before
		unhealth string            // a hostname that never turns healthy
		failUp   string            // a Worker whose upload fails

		wantUploads []string
		// wantLive: "prev" the version live before, "new" one this run
		// uploaded, "" no such Worker.
		wantLive  map[string]string
		wantHosts map[string]string
		wantNote  string
	}{
		{
			name:        "first deploy: each Worker after the ones it binds",
			wantUploads: []string{"shop-api", "shop-web"},
			wantLive:    map[string]string{"shop-api": "new", "shop-web": "new"},
			wantHosts:   map[string]string{"api.example.com": "shop-api", "shop.example.com": "shop-web"},
			wantNote:    "Production serves `abcdef0` everywhere.",
		},
		{
			name:        "Workers deployed by wrangler before are adopted and replaced",
			existing:    map[string][]string{"shop-api": nil, "shop-web": nil},
			hosts:       map[string]string{"api.example.com": "shop-api", "shop.example.com": "shop-web"},
			wantUploads: []string{"shop-api", "shop-web"},
			wantLive:    map[string]string{"shop-api": "new", "shop-web": "new"},
			wantHosts:   map[string]string{"api.example.com": "shop-api", "shop.example.com": "shop-web"},
			wantNote:    "Production serves",
		},
		{
			name:        "a failed health check rolls back what changed, newest first",
			existing:    map[string][]string{"shop-api": nil},
			hosts:       map[string]string{"api.example.com": "shop-api"},
			unhealth:    "shop.example.com",
			wantUploads: []string{"shop-api", "shop-web"},
			wantLive:    map[string]string{"shop-api": "prev", "shop-web": ""},
			wantHosts:   map[string]string{"api.example.com": "shop-api"},
			wantNote:    "`health:web` failed: every worker this run changed was rolled back",
		},
		{
			name:        "a failed upload rolls back that Worker and leaves the next alone",
			existing:    map[string][]string{"shop-api": nil, "shop-web": nil},
			failUp:      "shop-api",
			wantUploads: []string{"shop-api"},
			wantLive:    map[string]string{"shop-api": "prev", "shop-web": "prev"},
			wantHosts:   map[string]string{},
			wantNote:    "`deploy:api` failed: every worker this run changed was rolled back",
		},
		{
			name:      "a hostname serving another Worker stops the run before anything changes",
			existing:  map[string][]string{"shop-api": nil},
			hosts:     map[string]string{"shop.example.com": "legacy-site"},
			wantLive:  map[string]string{"shop-api": "prev", "shop-web": ""},
			wantHosts: map[string]string{"shop.example.com": "legacy-site"},
			wantNote:  "`validate` failed before anything changed: production is as it was.",
		},
		{
			name:     "another repository's Worker is not overwritten",
			existing: map[string][]string{"shop-api": otherRepo},
			wantLive: map[string]string{"shop-api": "prev", "shop-web": ""},
			wantNote: "`validate` failed before anything changed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cf, db := newFakeWorkers(), newFakeDatabases()
			db.add("proj", "production", "", nil)
			prev := map[string]string{}
			for name, tags := range tc.existing {
				prev[name] = cf.add(name, tags...)
			}
			for h, script := range tc.hosts {
				cf.hosts[h] = script
			}
			if tc.failUp != "" {
				cf.failUpload[tc.failUp] = errors.New("upload refused")
			}
			health := hostStatus{}
			if tc.unhealth != "" {
				health[tc.unhealth] = http.StatusBadGateway
			}

			states, rollback, runErr := runProductionPlan(t, cf, db, health)

			if !slices.Equal(cf.uploads, tc.wantUploads) {
				t.Errorf("uploads = %v, want %v", cf.uploads, tc.wantUploads)
			}
			for script, want := range tc.wantLive {
				got, ok := cf.live(script)
				switch {
				case want == "" && ok:
					t.Errorf("%s exists (live %s), want it absent", script, got)
				case want == "prev" && got != prev[script]:
					t.Errorf("%s serves %q, want the version live before (%s)", script, got, prev[script])
				case want == "new" && (!ok || got == prev[script]):
					t.Errorf("%s serves %q, want a version this run uploaded", script, got)
				}
			}
			if tc.wantHosts != nil && !maps.Equal(cf.hosts, tc.wantHosts) {
				t.Errorf("hostnames = %v, want %v", cf.hosts, tc.wantHosts)
			}
			note := productionNote("abcdef0123", runErr != nil, states, rollback, "")
			if !strings.Contains(note, tc.wantNote) {
				t.Errorf("note = %q, want it to contain %q", note, tc.wantNote)
			}
		})
	}
}

// runProductionPlan runs prodYAML's production plan at commit abcdef0123
// on the fakes, with the rollback a failed run gets.
func runProductionPlan(t *testing.T, cf *fakeWorkers, db *fakeDatabases, health hostStatus) (states, rollback []StepState, runErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file, err := repoconfig.Parse("deploybot.yml", []byte(prodYAML))
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{
		Repositories: map[string]config.Repository{prodRepo: {Cloudflare: config.RepoCloudflare{AccountID: "acct", ZoneID: "zone"}}},
		Neon:         db,
		Health:       &http.Client{Transport: health},
		HealthScheme: "https",
		// Long enough for a healthy Worker's first answer, short enough
		// that a failing one fails the test quickly.
		HealthWithin: 300 * time.Millisecond,
		Logger:       zerolog.Nop(),
	}
	tg, err := targetOf(deps, prodRepo)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := workspace.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := &fakeRepo{files: map[string]string{
		"web/index.js": "export default { fetch() { return new Response('web') } }",
		"api/index.js": "export default { fetch() { return new Response('api') } }",
	}}
	r := &productionRun{deps: deps, steps: newMemSteps(), repo: repo, sha: "abcdef0123", runID: 1, logger: zerolog.Nop()}
	pl := newProdPlan(r, file, tg, cf, ws)
	states, runErr = execute(ctx, r.steps, r.runID, pl.steps(), nil)
	if runErr != nil {
		rollback = pl.rollback(ctx)
	}
	return states, rollback, runErr
}

func TestRollbackChoice(t *testing.T) {
	w := func(name, previous string, deployed bool) *prodWorker {
		return &prodWorker{w: repoconfig.Worker{Name: name}, previous: previous, deployed: deployed}
	}
	cases := []struct {
		name    string
		workers []*prodWorker
		want    []string // "name:back" or "name:remove", in order
	}{
		{"nothing deployed yet", []*prodWorker{w("auth", "v1", false), w("api", "v2", false)}, nil},
		{"newest change first", []*prodWorker{w("auth", "v1", true), w("api", "v2", true), w("web", "v3", false)}, []string{"api:back", "auth:back"}},
		{"a Worker new in this run is removed", []*prodWorker{w("auth", "v1", true), w("api", "", true)}, []string{"api:remove", "auth:back"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, u := range rollbackChoice(tc.workers) {
				got = append(got, u.pw.w.Name+":"+map[bool]string{true: "remove", false: "back"}[u.remove])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rollbackChoice = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProductionNote(t *testing.T) {
	ok := func(name string) StepState { return StepState{Name: name, Status: StepSucceeded} }
	bad := func(name string) StepState { return StepState{Name: name, Status: StepFailed} }
	cases := []struct {
		name              string
		failed            bool
		states, rollback  []StepState
		migrate, want     string
		wantNoMigrateNote bool
	}{
		{name: "success", states: []StepState{ok("migrate")}, migrate: "m", want: "Production serves `abcdef0` everywhere.", wantNoMigrateNote: true},
		{name: "failed before any change", failed: true, states: []StepState{bad("validate")}, migrate: "m",
			want: "`validate` failed before anything changed: production is as it was.", wantNoMigrateNote: true},
		{name: "rolled back, migration kept", failed: true, states: []StepState{ok("migrate"), bad("health:web")}, rollback: []StepState{ok("rollback:web")},
			migrate: "npm run migrate", want: "`health:web` failed: every worker this run changed was rolled back, production is as it was before this run. The migration ran and was not rolled back (`npm run migrate`)."},
		{name: "rollback failed", failed: true, states: []StepState{ok("migrate"), bad("deploy:api")}, rollback: []StepState{bad("rollback:api")},
			want: "`deploy:api` failed and the rollback failed too: production may be mixed.", wantNoMigrateNote: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := productionNote("abcdef0123", tc.failed, tc.states, tc.rollback, tc.migrate)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("note = %q, want it to start with %q", got, tc.want)
			}
			if tc.wantNoMigrateNote && strings.Contains(got, "migration") {
				t.Errorf("note = %q mentions the migration", got)
			}
		})
	}
}
