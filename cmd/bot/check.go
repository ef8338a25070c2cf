package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/pipeline"
)

const checkUsage = `Usage: bot check [--config FILE [--repo OWNER/NAME]] [--root DIR] [--pr N] [PATH]

Reads a pipeline file as the bot reads it and reports every mistake as the bot
reports it (file:line: key: message), one per line, exiting 1. When the file is
valid it prints what the bot would do with it: the Workers with their names in a
preview and in production, the database branches, setup, the test stages in the
order they run, and the deploys that wait for tests.

  PATH           the pipeline file (default .github/deploybot.yml, from the current folder)
  --root DIR     the repository's root, from which the files the pipeline file names
                 (wrangler files) are read; nothing outside it is read
                 (default: the folder holding the file's .github/ folder)
  --pr N         the pull request whose preview names are shown (default 1)
  --config FILE  the bot's config, read as "bot serve" reads it (with its environment
                 variables): every secret the file names must have a value in the
                 repository's section, in each environment that uses it (values are
                 never printed)
  --repo OWNER/NAME
                 the repository's section of --config (needed when it has several)

The JSON Schema of the file, for editors, is doc/deploybot.schema.json.
`

// checkCmd validates a pipeline file on the developer's machine, before a
// pull request finds its mistakes: the same parser and the same messages as
// the bot, and the names the runs would use.
func checkCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, the usage printed below
	cfgPath := fs.String("config", "", "the bot's config file")
	repoName := fs.String("repo", "", "owner/name of the repository's section of --config")
	rootDir := fs.String("root", "", "the repository's root")
	pr := fs.Int("pr", 1, "the pull request whose preview names are shown")
	// Flags may follow the path, as in "bot check file.yml --config c.yml".
	var paths []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, checkUsage)
				return nil
			}
			fmt.Fprint(stderr, checkUsage)
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(paths) > 1 {
		fmt.Fprint(stderr, checkUsage)
		return fmt.Errorf("check takes one pipeline file, not %d", len(paths))
	}
	if *repoName != "" && *cfgPath == "" {
		return errors.New("--repo names a section of --config: give --config too")
	}
	if *pr < 1 {
		return fmt.Errorf("--pr %d: a pull request number is 1 or more", *pr)
	}
	file := repoconfig.Path
	if len(paths) == 1 {
		file = paths[0]
	}

	root, name, err := repositoryOf(file, *rootDir)
	if err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("open the repository %s: %w", root, err)
	}
	defer r.Close()
	data, err := r.ReadFile(filepath.FromSlash(name))
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	// Wrangler files are read as the bot reads them from the commit: by
	// their path in the repository, and never from outside it (os.Root
	// refuses "..", absolute paths and symlinks leading out).
	read := func(p string) ([]byte, error) { return r.ReadFile(filepath.FromSlash(p)) }
	f, err := repoconfig.ParseWith(name, data, read)
	if err != nil {
		return problems(stderr, name, err)
	}

	var repo string
	var secretsNote string
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath, getenv)
		if err != nil {
			return err
		}
		repo, err = repositoryIn(cfg, *repoName)
		if err != nil {
			return err
		}
		if errs := pipeline.MissingSecrets(cfg.Repositories[repo], cfg.MasterKey, f, repo); len(errs) > 0 {
			return problems(stderr, name, errors.Join(errs...))
		}
		secretsNote = fmt.Sprintf("%s holds every secret the file names for %s.", *cfgPath, repo)
	}
	repoShort := filepath.Base(root)
	if repo != "" {
		_, repoShort, _ = strings.Cut(repo, "/")
	}
	// A preview is planned with these names before anything is touched:
	// what fails there fails every preview.
	preview, err := pipeline.PreviewNames(f, pipeline.PreviewVars(*pr, exampleSHA, exampleBranch, repoShort))
	if err == nil {
		err = pipeline.PreviewNamesApart(f, preview)
	}
	if err != nil {
		return problems(stderr, name, err)
	}
	fmt.Fprintf(stdout, "%s is valid.\n", name)
	if secretsNote != "" {
		fmt.Fprintln(stdout, secretsNote)
	}
	printPlan(stdout, f, plan{
		pr:         *pr,
		preview:    preview,
		production: pipeline.ProductionNames(f),
		testBranch: pipeline.TestBranchName(f, exampleBranch, exampleSHA, repoShort, 0),
	})
	return nil
}

// The head of the example pull request and push whose names the plan shows.
const (
	exampleBranch = "feature/example"
	exampleSHA    = "0123456789abcdef0123456789abcdef01234567"
)

// repositoryOf finds the repository root of the pipeline file at file and
// the file's path in it. root ("" = the folder holding the file's .github/
// folder) must hold the file.
func repositoryOf(file, root string) (dir, name string, err error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", "", err
	}
	if root == "" {
		parent := filepath.Dir(abs)
		if filepath.Base(parent) != ".github" {
			return "", "", fmt.Errorf("%s is not in a .github folder: give the repository's root with --root", file)
		}
		root = filepath.Dir(parent)
	}
	if root, err = filepath.Abs(root); err != nil {
		return "", "", err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || !filepath.IsLocal(rel) {
		return "", "", fmt.Errorf("%s is outside the repository %s: the pipeline file must be inside it", file, root)
	}
	return root, filepath.ToSlash(rel), nil
}

// repositoryIn is the section of cfg for name, which may be left out when
// cfg has one repository.
func repositoryIn(cfg *config.Config, name string) (string, error) {
	var known []string
	for k := range cfg.Repositories {
		known = append(known, k)
	}
	sort.Strings(known)
	switch {
	case name != "":
		if _, ok := cfg.Repositories[name]; !ok {
			return "", fmt.Errorf("%s: repositories.%s: not in the config (it has: %s)", cfg.File(), name, orNone(known))
		}
		return name, nil
	case len(known) == 1:
		return known[0], nil
	case len(known) == 0:
		return "", fmt.Errorf("%s: repositories: the config has no repository section", cfg.File())
	}
	return "", fmt.Errorf("%s has several repositories (%s): choose one with --repo", cfg.File(), strings.Join(known, ", "))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// problems prints err's problems one per line, as the bot shows them, and
// returns the error that makes the command fail.
func problems(stderr io.Writer, name string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for _, line := range lines {
		fmt.Fprintln(stderr, line)
	}
	if len(lines) == 1 {
		return fmt.Errorf("%s: 1 problem", name)
	}
	return fmt.Errorf("%s: %d problems", name, len(lines))
}

// plan is what printPlan shows besides the file itself.
type plan struct {
	pr         int
	preview    pipeline.Names
	production pipeline.Names
	testBranch string
}

func printPlan(w io.Writer, f *repoconfig.File, p plan) {
	out := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	row := func(indent int, label, format string, args ...any) {
		out("%s%-23s%s", strings.Repeat(" ", indent), label+":", fmt.Sprintf(format, args...))
	}
	d := f.Database
	out("")
	out("Names are shown for pull request #%d and a push of %s at %s.", p.pr, exampleBranch, exampleSHA[:7])

	out("")
	if d.Project == "" {
		out("Database: none")
	} else {
		out("Database: Neon project %s", d.Project)
		row(2, "migrations", "%s", or(d.Migrate, "none"))
		row(2, "preview", "branch %s from %s (%s; a fork's: %s)", p.preview.Branch, d.Parent, d.InitSource, f.Forks.InitSource)
		if slices.ContainsFunc(f.Tests.Stages, func(s repoconfig.Stage) bool { return s.Database }) {
			row(2, "tests", "branch %s from %s, deleted when the run ends", p.testBranch, d.Parent)
		}
		row(2, "production", "migrates branch %s", p.production.Branch)
	}

	out("")
	if f.Setup.Run == "" {
		out("Setup: none")
	} else {
		out("Setup: %s (timeout %s)", f.Setup.Run, or(f.Setup.Timeout, "15m"))
		if c := f.Setup.Cache; len(c.Paths) > 0 {
			row(2, "cache", "%s, keyed by %s", strings.Join(c.Paths, ", "), strings.Join(c.Key, ", "))
		}
	}

	out("")
	order := f.DeployOrder()
	var deploy []string
	for _, w := range order {
		deploy = append(deploy, w.Name)
	}
	if len(f.Workers) == 0 {
		out("Workers: none")
	} else {
		out("Workers (each deployed after the Workers it binds: %s)", strings.Join(deploy, ", "))
	}
	for i, wk := range f.Workers {
		out("  %s", wk.Name)
		pv, pd := p.preview.Workers[i], p.production.Workers[i]
		row(4, "preview", "script %s%s", pv.Script, hostOf(pv.Hostname))
		row(4, "production", "script %s%s", pd.Script, hostOf(pd.Hostname))
		if wk.Build != "" {
			row(4, "build", "%s (in %s)", wk.Build, or(wk.Dir, "the repository's root"))
		}
		row(4, "main", "%s", wk.Main)
		if len(wk.Services) > 0 {
			var bs []string
			for _, s := range wk.Services {
				bs = append(bs, s.Binding+" → "+s.Worker)
			}
			row(4, "services", "%s", strings.Join(bs, ", "))
		}
		for _, env := range []string{repoconfig.EnvPreview, repoconfig.EnvProduction} {
			b := f.BindingsIn(wk, env)
			var parts []string
			if len(b.Secrets) > 0 {
				parts = append(parts, "from the bot's config "+strings.Join(b.Secrets, ", "))
			}
			if len(b.Generated) > 0 {
				parts = append(parts, "generated "+strings.Join(b.Generated, ", "))
			}
			if wk.DatabaseURL != "" {
				parts = append(parts, wk.DatabaseURL+" (the branch's connection URI)")
			}
			if len(parts) > 0 {
				row(4, "secrets in "+env, "%s", strings.Join(parts, "; "))
			}
		}
		row(4, "health", "GET %s answers %d", wk.Health.Path, wk.Health.Status)
		row(4, "paths", "%s", filterText(wk.Filter(), "a preview redeploys it after a change of"))
	}

	out("")
	if len(f.Tests.Stages) == 0 {
		out("Tests: none")
	} else {
		out("Tests (on every push, in this order; stages of one step run in parallel)")
		for i, step := range stageSteps(f.Tests.Stages) {
			var ns []string
			for _, s := range step {
				ns = append(ns, s.Name)
			}
			out("  %d. %s", i+1, strings.Join(ns, ", "))
			for _, s := range step {
				var notes []string
				if len(s.Needs) > 0 {
					notes = append(notes, "after "+strings.Join(s.Needs, ", "))
				}
				if s.Database {
					notes = append(notes, "on the test branch")
				}
				if s.Timeout != "" {
					notes = append(notes, "timeout "+s.Timeout)
				}
				if !s.Filter().Empty() {
					notes = append(notes, filterText(s.Filter(), "runs after a change of"))
				}
				line := fmt.Sprintf("     %-20s %s", s.Name, s.Run)
				if len(notes) > 0 {
					line += " (" + strings.Join(notes, "; ") + ")"
				}
				out("%s", line)
			}
		}
		if len(f.Tests.Secrets) > 0 {
			row(2, "secrets", "from the bot's config %s", strings.Join(f.Tests.Secrets, ", "))
		}
	}

	out("")
	out("Deploys")
	pv := f.Preview
	when := "pull requests " + strings.Join(pv.On, ", ")
	if !pv.Drafts {
		when += ", not drafts"
	}
	if pv.TTL != "" {
		when += "; removed after " + pv.TTL + " without a deploy"
	}
	row(2, "preview", "%s; %s", when, gateText(pv.NeedsTests, f.Tests, "the pull request's head"))
	if f.Production.Enabled {
		row(2, "production", "every push to the default branch; %s", gateText(f.Production.NeedsTests, f.Tests, "the merged commit"))
	} else {
		row(2, "production", "off (production.enabled is false)")
	}
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

func hostOf(h string) string {
	if h == "" {
		return ", no hostname"
	}
	return ", https://" + h
}

func filterText(f repoconfig.Filter, what string) string {
	if f.Empty() {
		return "every change"
	}
	s := what + " " + or(strings.Join(f.Paths, ", "), "any file")
	if len(f.Ignore) > 0 {
		s += " but " + strings.Join(f.Ignore, ", ")
	}
	return s
}

func gateText(g repoconfig.Gate, t repoconfig.Tests, commit string) string {
	stages := g.Of(t)
	if len(stages) == 0 {
		return "does not wait for tests"
	}
	return "waits for " + strings.Join(stages, ", ") + " to pass on " + commit
}

// stageSteps groups stages by when they can start: a stage is in the step
// after the last of the stages it needs. A validated file has no cycle.
func stageSteps(stages []repoconfig.Stage) [][]repoconfig.Stage {
	step := map[string]int{}
	var level func(s repoconfig.Stage) int
	byName := map[string]repoconfig.Stage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	level = func(s repoconfig.Stage) int {
		if l, ok := step[s.Name]; ok {
			return l
		}
		l := 0
		for _, n := range s.Needs {
			l = max(l, level(byName[n])+1)
		}
		step[s.Name] = l
		return l
	}
	var out [][]repoconfig.Stage
	for _, s := range stages {
		l := level(s)
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], s)
	}
	return out
}
