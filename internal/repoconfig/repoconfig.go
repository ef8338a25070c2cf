// Package repoconfig reads a repository's pipeline file, .github/deploybot.yml.
//
// The file says what a preview, a production deploy and a test run consist
// of: the Neon database branch, the migrate command, the Workers with their
// build commands, hostnames, secrets and health checks, and the test stages.
// The bot always reads it from the pull request's BASE branch, never from
// the head: a PR must not be able to change what runs with the repository's
// secrets. Commands in it are trusted like CI `run:` steps; the bot passes
// everything that comes from users (branch names, titles) in DEPLOYBOT_*
// environment variables, never inside the command text.
//
// Reading is strict (package strictyaml): a mistake is reported in the check
// run with the file, line and key.
package repoconfig

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"

	"github.com/revelations-studio/deploybot/internal/strictyaml"
)

// Path is where the file lives in a repository.
const Path = ".github/deploybot.yml"

// File is the pipeline file.
type File struct {
	Version      int          `yaml:"version"`
	Database     Database     `yaml:"database"`
	Environments Environments `yaml:"environments"`
	Setup        Setup        `yaml:"setup"`
	Preview      Preview      `yaml:"preview"`
	Workers      []Worker     `yaml:"workers"`
	Tests        Tests        `yaml:"tests"`
	Production   Production   `yaml:"production"`
	Forks        Forks        `yaml:"forks"`

	name  string           // the name it was parsed under, for Where
	lines strictyaml.Lines // the line of each key
}

// Where is "file:line: key" for a key of the file (workers[0].secrets[1]),
// for errors found after parsing.
func (f *File) Where(key string) string {
	if line := f.lines[key]; line > 0 {
		return fmt.Sprintf("%s:%d: %s", f.name, line, key)
	}
	return f.name + ": " + key
}

// SecretKey is the key under which the file names worker's secret name
// in env (its own secrets, else the environment's).
func (f *File) SecretKey(worker, env, name string) string {
	for i, w := range f.Workers {
		if w.Name != worker {
			continue
		}
		if j := slices.Index(w.Secrets, name); j >= 0 {
			return fmt.Sprintf("workers[%d].secrets[%d]", i, j)
		}
		we := w.Environments.Preview
		if env == EnvProduction {
			we = w.Environments.Production
		}
		if j := slices.Index(we.Secrets, name); j >= 0 {
			return fmt.Sprintf("workers[%d].environments.%s.secrets[%d]", i, env, j)
		}
	}
	if j := slices.Index(f.Tests.Secrets, name); j >= 0 {
		return fmt.Sprintf("tests.secrets[%d]", j)
	}
	return "secrets"
}

// Setup is a command run once per run, in the run's checkout, after the
// source is fetched and before the builds, the migration and the test
// stages, which all see what it left (installed dependencies, say). Builds
// of one run share a checkout: installing in setup, not in each build,
// keeps them from racing each other.
type Setup struct {
	Run     string `yaml:"run"`
	Timeout string `yaml:"timeout"` // default 15m
	// Cache keeps folders the setup command fills between runs.
	Cache SetupCache `yaml:"cache"`
}

// SetupCache keeps Paths (folders of the checkout, e.g. node_modules)
// between runs whose Key files (e.g. pnpm-lock.yaml) are the same: they are
// put back before the setup command runs and saved after it succeeded.
type SetupCache struct {
	Key   []string `yaml:"key"`
	Paths []string `yaml:"paths"`
}

// The bot's three environments: a pull request's preview, a push's test
// run, and production.
const (
	EnvPreview    = "preview"
	EnvTest       = "test"
	EnvProduction = "production"
)

// Environments says what differs between the environments. Secret values
// are not here: the bot's config holds them per environment.
type Environments struct {
	Preview    Environment `yaml:"preview"`
	Test       Environment `yaml:"test"`
	Production Environment `yaml:"production"`
}

// Environment is what everything of one environment gets.
type Environment struct {
	// Vars go to every Worker deployed in the environment (plain-text
	// bindings) and into the environment of its commands (builds,
	// migrations, test stages). Placeholders: {sha}, {sha7}, {branch},
	// {repo}, and {pr} in previews.
	Vars map[string]string `yaml:"vars"`
}

// Of returns the environment called name.
func (e Environments) Of(name string) Environment {
	switch name {
	case EnvPreview:
		return e.Preview
	case EnvTest:
		return e.Test
	case EnvProduction:
		return e.Production
	}
	return Environment{}
}

// WorkerEnvironments are what one Worker gets in addition in previews and
// in production.
type WorkerEnvironments struct {
	Preview    WorkerEnvironment `yaml:"preview"`
	Production WorkerEnvironment `yaml:"production"`
}

// WorkerEnvironment adds to a Worker in one environment.
type WorkerEnvironment struct {
	Vars    map[string]string `yaml:"vars"`
	Secrets []string          `yaml:"secrets"`
	// GeneratedSecrets: in production only the names listed here are
	// generated (a production secret such as BETTER_AUTH_SECRET is
	// usually the team's own, and the deploy keeps it).
	GeneratedSecrets []string `yaml:"generated_secrets"`
}

// Database is the Neon side of previews and tests.
type Database struct {
	// Project is the Neon project id, e.g. "proud-sun-123456".
	Project string `yaml:"project"`
	// Parent is the branch previews and test branches start from.
	Parent string `yaml:"parent"`
	// PreviewBranch names a PR's branch; placeholders as in Placeholders.
	PreviewBranch string `yaml:"preview_branch"`
	// TestBranch names a test run's ephemeral branch.
	TestBranch string `yaml:"test_branch"`
	// InitSource is "parent-data" (copy data) or "schema-only".
	InitSource string `yaml:"init_source"`
	// Migrate is the command applying migrations, run with DATABASE_URL set
	// to the branch's direct connection URI. Empty: no migrations.
	Migrate string `yaml:"migrate"`
}

// Preview says when PRs get previews.
type Preview struct {
	// Drafts deploys draft PRs too.
	Drafts bool `yaml:"drafts"`
	// On lists the pull_request actions that deploy (default: opened,
	// reopened, synchronize, ready_for_review).
	On []string `yaml:"on"`
	// TTL deletes a preview not updated for this long ("" = never), e.g. "168h".
	TTL string `yaml:"ttl"`
	// NeedsTests holds a preview back until these test stages passed on
	// its commit.
	NeedsTests Gate `yaml:"needs_tests"`
}

// Gate names the test stages a deploy waits for on its commit: a list of
// stage names, or "all" (every stage of tests.stages).
type Gate struct {
	All    bool
	Stages []string
}

// UnmarshalYAML reads "all" or a list of stage names.
func (g *Gate) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Value == "all":
		g.All = true
		return nil
	case n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("expected a stage name, found a %s", map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}[c.Kind])
			}
			g.Stages = append(g.Stages, c.Value)
		}
		return nil
	}
	return fmt.Errorf("expected a list of stage names or all, found %q", n.Value)
}

// Of returns the stage names g holds deploys for: every stage for "all".
func (g Gate) Of(t Tests) []string {
	if !g.All {
		return g.Stages
	}
	names := make([]string, len(t.Stages))
	for i, s := range t.Stages {
		names[i] = s.Name
	}
	return names
}

// Worker is one Cloudflare Worker of the app.
type Worker struct {
	Name string `yaml:"name"`
	// Wrangler is the Worker's wrangler file (wrangler.toml, .json or
	// .jsonc), which fills in what this file leaves unsaid (see
	// wrangler.go).
	Wrangler string `yaml:"wrangler"`
	// Script is the production script name; PreviewScript the pattern of a
	// PR's script (default "<script>-preview-{pr}").
	Script        string `yaml:"script"`
	PreviewScript string `yaml:"preview_script"`
	// Hostname is the production hostname; PreviewHostname the pattern of a
	// PR's hostname, e.g. "codex-preview-{pr}.revelations.studio".
	Hostname        string `yaml:"hostname"`
	PreviewHostname string `yaml:"preview_hostname"`
	// Build is the command producing the Worker's files (run in Dir).
	Build string `yaml:"build"`
	// Dir is the worker's directory in the repository ("" = root).
	Dir string `yaml:"dir"`
	// Main is the ES module entry, relative to Dir; Modules are extra module
	// files; Assets a directory of static assets.
	Main string `yaml:"main"`
	// Modules may be globs ("dist/chunks/*.js"), matched when the Worker
	// is uploaded.
	Modules []string `yaml:"modules"`
	Assets  string   `yaml:"assets"`
	// AssetsBinding exposes the assets to the Worker as env.<binding>.
	AssetsBinding      string            `yaml:"assets_binding"`
	CompatibilityDate  string            `yaml:"compatibility_date"`
	CompatibilityFlags []string          `yaml:"compatibility_flags"`
	Vars               map[string]string `yaml:"vars"`
	// Secrets names secret bindings whose values the bot's config holds for
	// this repository.
	Secrets []string `yaml:"secrets"`
	// GeneratedSecrets names bindings whose values the bot derives per PR
	// (stable across redeploys, never stored), e.g. BETTER_AUTH_SECRET.
	GeneratedSecrets []string `yaml:"generated_secrets"`
	// DatabaseURL names the secret binding that receives the branch's
	// pooled connection URI ("" = none).
	DatabaseURL string `yaml:"database_url"`
	// Services binds other Workers of the app by name.
	Services []Service `yaml:"services"`
	Health   Health    `yaml:"health"`
	// Environments adds vars, secrets and generated secrets per
	// environment.
	Environments WorkerEnvironments `yaml:"environments"`
	// Paths and PathsIgnore: a preview redeploys the Worker only when a
	// file they select changed since the preview's last deploy (see
	// Filter); otherwise it keeps the version it has.
	Paths       []string `yaml:"paths"`
	PathsIgnore []string `yaml:"paths_ignore"`
}

// Filter is the Worker's path filter.
func (w Worker) Filter() Filter { return Filter{Paths: w.Paths, Ignore: w.PathsIgnore} }

// Filter selects, among the files a change touched, the ones that concern
// a stage or a Worker, with globs as GitHub Actions writes them ("**"
// crosses folders, "*" does not): a file counts when it matches one of
// Paths (any file, when Paths is empty) and none of Ignore.
type Filter struct {
	Paths  []string
	Ignore []string
}

// Empty reports whether the filter selects every change.
func (f Filter) Empty() bool { return len(f.Paths) == 0 && len(f.Ignore) == 0 }

// Touched reports whether a change of files concerns the filter: one of
// them counts.
func (f Filter) Touched(files []string) bool {
	if f.Empty() {
		return true
	}
	for _, file := range files {
		if (len(f.Paths) == 0 || matchAny(f.Paths, file)) && !matchAny(f.Ignore, file) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, file string) bool {
	for _, p := range patterns {
		if ok, _ := doublestar.Match(p, file); ok {
			return true
		}
	}
	return false
}

// Bindings is what a Worker gets in one environment, before placeholders
// are filled in.
type Bindings struct {
	Vars      map[string]string
	Secrets   []string
	Generated []string
}

// BindingsIn returns what w gets in env (EnvPreview or EnvProduction).
// Vars are merged from the most general to the most specific: the
// Worker's vars, the environment's, the Worker's for the environment.
// Secrets are the Worker's and its environment's. Generated secrets are
// the Worker's in previews; production gets only the ones its own
// generated_secrets names.
func (f *File) BindingsIn(w Worker, env string) Bindings {
	we := w.Environments.Preview
	if env == EnvProduction {
		we = w.Environments.Production
	}
	b := Bindings{Vars: map[string]string{}}
	for _, m := range []map[string]string{w.Vars, f.Environments.Of(env).Vars, we.Vars} {
		for k, v := range m {
			b.Vars[k] = v
		}
	}
	b.Secrets = append(slices.Clone(w.Secrets), we.Secrets...)
	if env != EnvProduction {
		b.Generated = slices.Clone(w.GeneratedSecrets)
	}
	b.Generated = append(b.Generated, we.GeneratedSecrets...)
	return b
}

// Service is a service binding to another worker of this file.
type Service struct {
	Binding string `yaml:"binding"`
	Worker  string `yaml:"worker"`
}

// Health is how a deployed worker proves it works.
type Health struct {
	Path    string `yaml:"path"`
	Status  int    `yaml:"status"`
	Timeout string `yaml:"timeout"` // overall deadline, e.g. "5m"
}

// Tests are the stages run on every push.
type Tests struct {
	Stages []Stage `yaml:"stages"`
	// Secrets names secrets of the test environment (values in the bot's
	// config) given to every stage as environment variables, masked in
	// its log.
	Secrets []string `yaml:"secrets"`
}

// Stage is one test command; stages run in parallel where Needs allows.
type Stage struct {
	Name     string   `yaml:"name"`
	Run      string   `yaml:"run"`
	Needs    []string `yaml:"needs"`
	Database bool     `yaml:"database"`
	Timeout  string   `yaml:"timeout"`
	// Paths and PathsIgnore: the stage runs only when a file they select
	// changed in the push (see Filter); otherwise its check run says it
	// was skipped, and a deploy waiting for it is not held back.
	Paths       []string `yaml:"paths"`
	PathsIgnore []string `yaml:"paths_ignore"`
}

// Filter is the stage's path filter.
func (s Stage) Filter() Filter { return Filter{Paths: s.Paths, Ignore: s.PathsIgnore} }

// Production says how merges deploy.
type Production struct {
	// Enabled deploys the default branch on every push (a merge).
	Enabled bool `yaml:"enabled"`
	// Branch is the Neon branch migrated on deploy (default: database.parent).
	Branch string `yaml:"branch"`
	// NeedsTests holds a production deploy back until these test stages
	// passed on the merged commit.
	NeedsTests Gate `yaml:"needs_tests"`
}

// Forks says what a maintainer-approved fork PR gets.
type Forks struct {
	// Secrets gives approved fork runs the configured secrets.
	Secrets bool `yaml:"secrets"`
	// InitSource of fork branches (default "schema-only").
	InitSource string `yaml:"init_source"`
}

// Placeholders may appear in name patterns.
var Placeholders = []string{"pr", "sha", "sha7", "branch", "repo"}

// Parse reads the file's bytes; name (e.g. ".github/deploybot.yml@main")
// is used in errors. Defaults are filled in. A Worker naming a wrangler
// file needs ParseWith.
func Parse(name string, data []byte) (*File, error) { return ParseWith(name, data, nil) }

// ParseWith is Parse for a file whose Workers may take their settings from
// wrangler files: read reads those from the same commit.
func ParseWith(name string, data []byte, read Reader) (*File, error) {
	f := defaults()
	lines, err := strictyaml.Decode(name, data, f)
	if err != nil {
		return nil, err
	}
	if errs := resolveWrangler(name, f, lines, read); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f.name, f.lines = name, lines
	v := validator{file: name, lines: lines}
	v.check(f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return f, nil
}

// defaults is the file before the repository's is read over it (the JSON
// Schema shows these as the keys' defaults).
func defaults() *File {
	return &File{
		Version:  1,
		Database: Database{Parent: "production", PreviewBranch: "pr-{pr}", TestBranch: "push-{branch}-{sha7}", InitSource: "parent-data"},
		Preview:  Preview{On: slices.Clone(prActions)},
		Forks:    Forks{InitSource: "schema-only"},
	}
}

type validator struct {
	file  string
	lines strictyaml.Lines
	errs  []error
}

// fail records an error once: a Worker's bindings are checked in each
// environment, and a mistake shared by both is still one mistake.
func (v *validator) fail(key, format string, args ...any) {
	err := v.lines.Errorf(v.file, key, format, args...)
	for _, e := range v.errs {
		if e.Error() == err.Error() {
			return
		}
	}
	v.errs = append(v.errs, err)
}

var (
	nameRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	bindingRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	dateRE       = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	placeholerRE = regexp.MustCompile(`\{([^{}]*)\}`)
	prActions    = []string{"opened", "reopened", "synchronize", "ready_for_review"}
	initSources  = []string{"parent-data", "schema-only"}
)

func (v *validator) check(f *File) {
	if f.Version != 1 {
		v.fail("version", "%d is not a version this bot reads (use 1)", f.Version)
	}
	d := f.Database
	if d.Project == "" && (len(f.Workers) > 0 || hasDatabaseStage(f.Tests)) {
		v.fail("database.project", "is required (the Neon project id, e.g. proud-sun-123456)")
	}
	v.pattern("database.preview_branch", d.PreviewBranch, true)
	v.pattern("database.test_branch", d.TestBranch, true)
	v.oneOf("database.init_source", d.InitSource, initSources)
	v.oneOf("forks.init_source", f.Forks.InitSource, initSources)
	for i, a := range f.Preview.On {
		v.oneOf(fmt.Sprintf("preview.on[%d]", i), a, prActions)
	}
	v.duration("preview.ttl", f.Preview.TTL)

	names := map[string]bool{}
	for i, w := range f.Workers {
		key := fmt.Sprintf("workers[%d]", i)
		switch {
		case w.Name == "":
			v.fail(key+".name", "is required")
		case !nameRE.MatchString(w.Name):
			v.fail(key+".name", "%q: use lowercase letters, digits, - and _", w.Name)
		case names[w.Name]:
			v.fail(key+".name", "%q is used by another worker", w.Name)
		}
		names[w.Name] = true
		if w.Script == "" {
			v.fail(key+".script", "is required (the production script name)")
		}
		if w.PreviewScript == "" {
			f.Workers[i].PreviewScript = w.Script + "-preview-{pr}"
		}
		v.pattern(key+".preview_script", f.Workers[i].PreviewScript, true)
		if w.PreviewHostname != "" {
			v.pattern(key+".preview_hostname", w.PreviewHostname, true)
		}
		if w.Main == "" {
			v.fail(key+".main", "is required (the entry module, e.g. dist/index.js)")
		}
		v.relative(key+".dir", w.Dir)
		v.relative(key+".main", w.Main)
		v.relative(key+".assets", w.Assets)
		for j, m := range w.Modules {
			k := fmt.Sprintf("%s.modules[%d]", key, j)
			v.relative(k, m)
			if !doublestar.ValidatePattern(m) {
				v.fail(k, "%q is not a valid glob", m)
			}
		}
		if w.CompatibilityDate == "" {
			v.fail(key+".compatibility_date", "is required (e.g. 2025-01-01)")
		} else if _, err := time.Parse(time.DateOnly, w.CompatibilityDate); err != nil || !dateRE.MatchString(w.CompatibilityDate) {
			v.fail(key+".compatibility_date", "%q is not a date like 2025-01-01", w.CompatibilityDate)
		}
		v.bindings(f, key, w)
		v.globs(key, w.Filter())
		h := w.Health
		if h.Status == 0 {
			f.Workers[i].Health.Status = 200
		} else if h.Status < 100 || h.Status > 599 {
			v.fail(key+".health.status", "%d is not an HTTP status", h.Status)
		}
		if h.Path == "" {
			f.Workers[i].Health.Path = "/"
		} else if !strings.HasPrefix(h.Path, "/") {
			v.fail(key+".health.path", "%q must start with /", h.Path)
		}
		v.duration(key+".health.timeout", h.Timeout)
	}
	unknown := false
	for i, w := range f.Workers {
		for j, s := range w.Services {
			if !names[s.Worker] {
				v.fail(fmt.Sprintf("workers[%d].services[%d].worker", i, j), "%q is not a worker of this file", s.Worker)
				unknown = true
			}
		}
	}
	if !unknown {
		if _, cycle := deployOrder(f.Workers); cycle != nil {
			v.fail(fmt.Sprintf("workers[%d].services", cycle.index), "%s is a cycle of service bindings: Cloudflare refuses to upload a Worker bound to one that does not exist yet, so the first deploy could upload none of them", strings.Join(cycle.path, " → "))
		}
	}
	v.stages(f.Tests.Stages)
	v.duration("setup.timeout", f.Setup.Timeout)
	if c := f.Setup.Cache; len(c.Key) > 0 || len(c.Paths) > 0 {
		if len(c.Key) == 0 || len(c.Paths) == 0 {
			v.fail("setup.cache", "needs both key (the lockfiles) and paths (the folders to keep)")
		}
		if strings.TrimSpace(f.Setup.Run) == "" {
			v.fail("setup.run", "is required with setup.cache (the command that fills the cached folders)")
		}
		for i, p := range c.Key {
			v.relative(fmt.Sprintf("setup.cache.key[%d]", i), p)
		}
		for i, p := range c.Paths {
			k := fmt.Sprintf("setup.cache.paths[%d]", i)
			v.relative(k, p)
			if path.Clean(p) == "." {
				v.fail(k, "%q is the whole checkout: name the folders to keep", p)
			}
		}
	}
	if f.Setup.Timeout != "" && strings.TrimSpace(f.Setup.Run) == "" {
		v.fail("setup.run", "is required with setup.timeout (the command to run)")
	}
	v.gate("preview.needs_tests", f.Preview.NeedsTests, f.Tests)
	v.gate("production.needs_tests", f.Production.NeedsTests, f.Tests)
	for j, s := range f.Tests.Secrets {
		if !bindingRE.MatchString(s) {
			v.fail(fmt.Sprintf("tests.secrets[%d]", j), "%q is not a valid environment variable name", s)
		}
	}
	for _, env := range []string{EnvPreview, EnvTest, EnvProduction} {
		for name, val := range f.Environments.Of(env).Vars {
			v.vars("environments."+env+".vars."+name, name, val, env)
		}
	}
}

// globs checks a path filter's patterns.
func (v *validator) globs(key string, f Filter) {
	for _, list := range []struct {
		name     string
		patterns []string
	}{{"paths", f.Paths}, {"paths_ignore", f.Ignore}} {
		for i, p := range list.patterns {
			k := fmt.Sprintf("%s.%s[%d]", key, list.name, i)
			switch {
			case p == "" || strings.HasPrefix(p, "/"):
				v.fail(k, "%q: write paths from the repository's root, without a leading /", p)
			case !doublestar.ValidatePattern(p):
				v.fail(k, "%q is not a valid glob", p)
			}
		}
	}
}

// gate checks that a gate names stages of the file.
func (v *validator) gate(key string, g Gate, t Tests) {
	if (g.All || len(g.Stages) > 0) && len(t.Stages) == 0 {
		v.fail(key, "waits for tests, but tests.stages has none")
		return
	}
	for i, name := range g.Stages {
		if !slices.ContainsFunc(t.Stages, func(s Stage) bool { return s.Name == name }) {
			v.fail(fmt.Sprintf("%s[%d]", key, i), "%q is not a stage of tests.stages", name)
		}
	}
}

// bindings checks a Worker's binding names in each environment it deploys
// to: each name is given once, by one kind of binding (a var may be
// overridden by a more specific var).
func (v *validator) bindings(f *File, key string, w Worker) {
	for name, val := range w.Vars {
		v.vars(key+".vars."+name, name, val, "")
	}
	for _, env := range []string{EnvPreview, EnvProduction} {
		we := w.Environments.Preview
		if env == EnvProduction {
			we = w.Environments.Production
		}
		for name, val := range we.Vars {
			v.vars(key+".environments."+env+".vars."+name, name, val, env)
		}
		seen := map[string]string{}
		bind := func(k, name string) {
			if !bindingRE.MatchString(name) {
				v.fail(k, "%q is not a valid binding name", name)
			} else if prev, dup := seen[name]; dup {
				v.fail(k, "binding %s is also given by %s", name, prev)
			}
			seen[name] = k
		}
		b := f.BindingsIn(w, env)
		for name := range b.Vars {
			seen[name] = "vars." + name
		}
		list := func(k string, names []string) {
			for j, s := range names {
				bind(fmt.Sprintf("%s[%d]", k, j), s)
			}
		}
		list(key+".secrets", w.Secrets)
		list(key+".environments."+env+".secrets", we.Secrets)
		if env == EnvPreview {
			list(key+".generated_secrets", w.GeneratedSecrets)
		}
		list(key+".environments."+env+".generated_secrets", we.GeneratedSecrets)
		if w.DatabaseURL != "" {
			bind(key+".database_url", w.DatabaseURL)
		}
		if w.AssetsBinding != "" {
			bind(key+".assets_binding", w.AssetsBinding)
		}
		for j, s := range w.Services {
			bind(fmt.Sprintf("%s.services[%d].binding", key, j), s.Binding)
		}
	}
}

// varPlaceholderRE finds placeholders in a var's value; other braces (a
// JSON value, say) are left alone.
var varPlaceholderRE = regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)

// vars checks one var: its name, and placeholders the environment has
// (env "" for a var of every environment).
func (v *validator) vars(key, name, val, env string) {
	if !bindingRE.MatchString(name) {
		v.fail(key, "%q is not a valid binding name", name)
		return
	}
	for _, m := range varPlaceholderRE.FindAllStringSubmatch(val, -1) {
		switch {
		case !slices.Contains(Placeholders, m[1]):
			v.fail(key, "unknown placeholder {%s} (known: {%s})", m[1], strings.Join(Placeholders, "}, {"))
		case m[1] == "pr" && env != EnvPreview:
			v.fail(key, "uses {pr}, which only previews have: put it under environments.preview.vars")
		}
	}
}

// DeployOrder returns the workers in an order Cloudflare accepts on a
// first deploy: every Worker after the Workers its service bindings name
// (an upload binding a Worker that does not exist is refused), otherwise
// in the file's order. A validated file has no cycle.
func (f *File) DeployOrder() []Worker {
	order, _ := deployOrder(f.Workers)
	return order
}

// bindingCycle is a cycle of service bindings: path names the workers,
// the first again at the end; index is the first one's place in the file.
type bindingCycle struct {
	index int
	path  []string
}

// deployOrder sorts workers so that each follows those it binds (a
// depth-first topological sort, visiting in file order so the result is
// the file's order wherever bindings allow), or reports a cycle.
func deployOrder(workers []Worker) ([]Worker, *bindingCycle) {
	index := map[string]int{}
	for i, w := range workers {
		index[w.Name] = i
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(workers))
	var order []Worker
	var stack []string
	var visit func(i int) *bindingCycle
	visit = func(i int) *bindingCycle {
		switch state[i] {
		case done:
			return nil
		case visiting:
			start := slices.Index(stack, workers[i].Name)
			path := append(slices.Clone(stack[start:]), workers[i].Name)
			return &bindingCycle{index: index[path[0]], path: path}
		}
		state[i] = visiting
		stack = append(stack, workers[i].Name)
		for _, s := range workers[i].Services {
			j, ok := index[s.Worker]
			if !ok {
				continue // reported as an unknown worker
			}
			if c := visit(j); c != nil {
				return c
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		order = append(order, workers[i])
		return nil
	}
	for i := range workers {
		if c := visit(i); c != nil {
			return workers, c
		}
	}
	return order, nil
}

func (v *validator) stages(stages []Stage) {
	byName := map[string]int{}
	for i, s := range stages {
		key := fmt.Sprintf("tests.stages[%d]", i)
		switch {
		case s.Name == "":
			v.fail(key+".name", "is required")
		case !nameRE.MatchString(s.Name):
			v.fail(key+".name", "%q: use lowercase letters, digits, - and _", s.Name)
		default:
			if _, dup := byName[s.Name]; dup {
				v.fail(key+".name", "%q is used by another stage", s.Name)
			}
			byName[s.Name] = i
		}
		if strings.TrimSpace(s.Run) == "" {
			v.fail(key+".run", "is required (the command to run)")
		}
		v.duration(key+".timeout", s.Timeout)
		v.globs(key, s.Filter())
	}
	for i, s := range stages {
		for j, n := range s.Needs {
			if _, ok := byName[n]; !ok {
				v.fail(fmt.Sprintf("tests.stages[%d].needs[%d]", i, j), "%q is not a stage of this file", n)
			}
		}
	}
	// A cycle would leave stages waiting forever: find one and name it.
	state := make([]int, len(stages)) // 0 new, 1 visiting, 2 done
	var visit func(i int, trail []string) bool
	visit = func(i int, trail []string) bool {
		if state[i] == 1 {
			v.fail(fmt.Sprintf("tests.stages[%d].needs", i), "stages depend on each other in a cycle: %s", strings.Join(append(trail, stages[i].Name), " → "))
			return true
		}
		if state[i] == 2 {
			return false
		}
		state[i] = 1
		for _, n := range stages[i].Needs {
			if j, ok := byName[n]; ok && visit(j, append(trail, stages[i].Name)) {
				return true
			}
		}
		state[i] = 2
		return false
	}
	for i := range stages {
		if visit(i, nil) {
			return
		}
	}
}

// pattern checks that a name pattern uses known placeholders and, when
// perPR, that it varies by PR or commit (else every PR would share one).
// {branch} alone does not: two PRs from one branch name (a fork's "main"
// and another's) would share a preview, and a head ref "Production" would
// name the production branch itself.
func (v *validator) pattern(key, p string, perPR bool) {
	if p == "" {
		v.fail(key, "is empty")
		return
	}
	var used []string
	for _, m := range placeholerRE.FindAllStringSubmatch(p, -1) {
		if !slices.Contains(Placeholders, m[1]) {
			v.fail(key, "unknown placeholder {%s} (known: {%s})", m[1], strings.Join(Placeholders, "}, {"))
			return
		}
		used = append(used, m[1])
	}
	if perPR && !slices.ContainsFunc(used, func(s string) bool { return s == "pr" || s == "sha" || s == "sha7" }) {
		if slices.Contains(used, "branch") {
			v.fail(key, "%q has {branch} but no {pr} or {sha}: branch names are not unique per pull request (add {pr})", p)
			return
		}
		v.fail(key, "%q has no {pr} or {sha}: every run would share one name", p)
	}
}

func (v *validator) oneOf(key, got string, allowed []string) {
	if !slices.Contains(allowed, got) {
		v.fail(key, "%q is not one of %s", got, strings.Join(allowed, ", "))
	}
}

func (v *validator) duration(key, s string) {
	if s == "" {
		return
	}
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		v.fail(key, "%q is not a positive duration (e.g. 90s, 5m)", s)
	}
}

// relative checks a path stays inside the repository.
func (v *validator) relative(key, p string) {
	if p == "" {
		return
	}
	clean := path.Clean(p)
	if path.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../") {
		v.fail(key, "%q must be a path inside the repository", p)
	}
}

func hasDatabaseStage(t Tests) bool {
	return slices.ContainsFunc(t.Stages, func(s Stage) bool { return s.Database })
}
