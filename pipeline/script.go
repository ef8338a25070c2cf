package pipeline

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
)

// scriptSpec is what a Worker upload needs beside the pipeline file: the
// names and secret values of one environment (a PR's preview, production).
type scriptSpec struct {
	worker repoconfig.Worker
	// env is the environment (repoconfig.EnvPreview, EnvProduction) and
	// bindings what the worker gets in it; placeholders fill in its vars.
	env          string
	bindings     repoconfig.Bindings
	placeholders map[string]string
	name         string // the script name in this environment
	// workspace is the checkout the build ran in; the worker's files are
	// read beneath it only (see buildScript).
	workspace string
	commit    string
	dbURL     string // the pooled connection URI of this environment's branch
	// scope keys the generated secrets: "pr-7", "production".
	scope string
	// repoCfg holds the repository's secret values per environment, file
	// the pipeline file that names them.
	repoCfg config.Repository
	file    *repoconfig.File
	// withhold keeps the configured secrets from the Worker (an approved
	// fork PR without forks.secrets).
	withhold bool
	// services maps worker names of the file to their scripts here.
	services map[string]string
}

// buildScript reads the built files and assembles the upload.
func buildScript(deps Deps, repo string, s scriptSpec, log *Log) (cloudflare.Script, error) {
	w := s.worker
	script := cloudflare.Script{
		Name:               s.name,
		MainModule:         filepath.Base(w.Main),
		CompatibilityDate:  w.CompatibilityDate,
		CompatibilityFlags: w.CompatibilityFlags,
		Vars:               withEnv(expandVars(s.bindings.Vars, s.placeholders), map[string]string{cloudflare.CommitVar: s.commit}),
		Secrets:            map[string]string{},
		Tags:               scriptTags(repo, s.scope),
		// Production keeps the secrets the team set on its Workers itself
		// (a production BETTER_AUTH_SECRET): the bot replaces only the ones
		// it uploads.
		KeepSecrets: s.env == repoconfig.EnvProduction,
	}
	// The build ran the repository's code, which can leave a symlink (or a
	// symlinked folder) pointing at a host file, e.g. dist/index.js ->
	// /etc/passwd or the bot's config. Everything the upload sends is read
	// through an os.Root at the workspace, which refuses any path that leads
	// out of it.
	root, err := os.OpenRoot(s.workspace)
	if err != nil {
		return script, fmt.Errorf("worker %s: open the workspace: %w", w.Name, err)
	}
	defer root.Close()
	// Parts are named by their path from the main module's folder, as
	// wrangler names them: Cloudflare resolves "./chunks/a.js" in
	// dist/index.js to the part "chunks/a.js", not to "a.js".
	base := path.Dir(path.Clean(w.Main))
	modules, err := expandModules(root, w)
	if err != nil {
		return script, err
	}
	for _, rel := range append([]string{w.Main}, modules...) {
		file := path.Join(w.Dir, rel)
		name, ok := moduleName(base, rel)
		if !ok {
			return script, fmt.Errorf("worker %s: module %s is not inside the main module's folder %s: Cloudflare resolves imports from the main module's folder, so every module must be below it", w.Name, rel, base)
		}
		content, err := root.ReadFile(filepath.FromSlash(file))
		if err != nil {
			if strings.Contains(err.Error(), "escapes") {
				return script, fmt.Errorf("worker %s: module %s leads outside the workspace (a symlink, or an absolute one): the bot uploads only files the build wrote inside it: %w", w.Name, file, err)
			}
			return script, fmt.Errorf("worker %s: read module %s (did the build produce it?): %w", w.Name, file, err)
		}
		script.Modules = append(script.Modules, cloudflare.Module{Name: name, Content: content})
	}
	if w.Assets != "" {
		script.AssetsRoot = s.workspace
		script.AssetsDir = filepath.FromSlash(path.Join(w.Dir, w.Assets))
		script.AssetsBinding = w.AssetsBinding
	}
	if w.DatabaseURL != "" {
		script.Secrets[w.DatabaseURL] = s.dbURL
	}
	for _, name := range s.bindings.Generated {
		v, err := generatedSecret(deps.MasterKey, repo, s.scope, name)
		if err != nil {
			return script, err
		}
		script.Secrets[name] = v
	}
	if s.withhold {
		if len(s.bindings.Secrets) > 0 {
			log.Printf("fork pull request: secrets %s withheld", strings.Join(s.bindings.Secrets, ", "))
		}
	} else {
		for _, name := range s.bindings.Secrets {
			sec, err := secretIn(s.repoCfg, s.file, repo, s.env, w.Name, name)
			if err != nil {
				return script, err
			}
			script.Secrets[name] = sec
		}
	}
	for _, b := range w.Services {
		if target, ok := s.services[b.Worker]; ok {
			script.ServiceBindings = append(script.ServiceBindings, cloudflare.ServiceBinding{Binding: b.Binding, Service: target})
		}
	}
	return script, nil
}

// secretIn is the value of a Worker's secret in env, or an error naming
// the key of the bot's config to set.
func secretIn(cfg config.Repository, file *repoconfig.File, repo, env, worker, name string) (string, error) {
	sec, ok, where := cfg.SecretIn(env, name)
	if !ok {
		named := ""
		if file != nil {
			named = " (" + file.Where(file.SecretKey(worker, env, name)) + ")"
		}
		return "", fmt.Errorf("worker %s needs secret %s%s in the %s environment, which the bot's config does not hold: set repositories.%s.%s", worker, name, named, env, repo, where)
	}
	return sec.Value(), nil
}

// expandModules is the worker's modules with their globs matched against
// what the build wrote (through root, so never outside the workspace), in
// order and without repeats; a glob that matches nothing is an error.
func expandModules(root *os.Root, w repoconfig.Worker) ([]string, error) {
	var out []string
	seen := map[string]bool{path.Clean(w.Main): true}
	add := func(rel string) {
		if rel = path.Clean(rel); !seen[rel] {
			seen[rel] = true
			out = append(out, rel)
		}
	}
	for _, m := range w.Modules {
		if !strings.ContainsAny(m, "*?[{") {
			add(m)
			continue
		}
		matches, err := doublestar.Glob(root.FS(), path.Join(path.Clean(w.Dir), m), doublestar.WithFilesOnly())
		if err != nil {
			return nil, fmt.Errorf("worker %s: modules %q: %w", w.Name, m, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("worker %s: modules %q matches no file (did the build produce them?)", w.Name, m)
		}
		slices.Sort(matches)
		for _, full := range matches {
			rel := full
			if d := path.Clean(w.Dir); d != "." && d != "" {
				rel = strings.TrimPrefix(full, d+"/")
			}
			add(rel)
		}
	}
	return out, nil
}

// expandVars fills the placeholders ({pr}, {sha}, …) into var values; other
// braces (a JSON value) stay as written.
func expandVars(vars, placeholders map[string]string) map[string]string {
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		for name, value := range placeholders {
			v = strings.ReplaceAll(v, "{"+name+"}", value)
		}
		out[k] = v
	}
	return out
}

// moduleName is rel's path from the folder base ("dist/chunks/a.js" from
// "dist" is "chunks/a.js"); ok is false for a module outside base.
func moduleName(base, rel string) (string, bool) {
	rel = path.Clean(rel)
	if base == "." {
		return rel, !strings.HasPrefix(rel, "../")
	}
	name, ok := strings.CutPrefix(rel, base+"/")
	return name, ok
}

// Tags on every Worker the bot uploads: they say it is the bot's, and for
// which repository and environment, so the sweep recognises its own Workers
// even when the database that recorded them is gone.
const (
	tagBot     = "deploybot"
	tagRepo    = "deploybot-repo:"
	tagEnv     = "deploybot-env:"
	previewEnv = "pr-"
)

func scriptTags(repo, scope string) []string {
	return []string{tagBot, tagRepo + repo, tagEnv + scope}
}

// claimScript checks, before the Worker name in account is overwritten or
// deleted for repo's scope ("pr-5", "production"), that it is the bot's
// for exactly that: absent, or tagged by the bot for this repository and
// scope. A production Worker without any deploybot tag is adopted — the
// usual move from wrangler to the bot, and the repository's config names
// it while the bot's config gives the repository that account — but one
// the bot tagged for something else never is.
func claimScript(ctx context.Context, cf Workers, account, name, repo, scope string) (cloudflare.ScriptLookup, error) {
	l, err := cf.LookupScript(ctx, name)
	if err != nil || !l.Found {
		return l, err
	}
	if ownedFor(l.Tags, repo, scope) || scope == productionScope && !slices.Contains(l.Tags, tagBot) {
		return l, nil
	}
	want := scope + " Worker of " + repo
	if pr, ok := strings.CutPrefix(scope, previewEnv); ok {
		want = "preview Worker of " + repo + "#" + pr
	}
	return l, &cloudflare.NotOwnedError{Account: account, Script: name, Tags: l.Tags, Want: want}
}

// warnWorkerLimit says in the run's log when creating a Worker brings the
// account within 10% of its plan's number of Workers, so that the team
// hears of it before Cloudflare refuses one (error 10037) and a preview
// fails.
func warnWorkerLimit(log *Log, account string, l cloudflare.ScriptLookup, limit int) {
	if l.Found || limit <= 0 {
		return
	}
	after := l.Workers + 1
	if after*10 < limit*9 {
		return
	}
	if after > limit {
		log.Printf("warning: Cloudflare account %s already has %d Workers, and cloudflare.workers_limit says its plan allows %d: this upload will probably be refused. Close stale previews, delete unused Workers, or move to a plan that allows more (and raise cloudflare.workers_limit).", account, l.Workers, limit)
		return
	}
	log.Printf("warning: Cloudflare account %s will have %d of the %d Workers its plan allows (cloudflare.workers_limit); once they are used up, new previews fail. Close stale previews or delete unused Workers.", account, after, limit)
}

// productionScope is production's scope (see scriptTags).
const productionScope = "production"

// ownedFor reports whether tags are the bot's for repo's scope.
func ownedFor(tags []string, repo, scope string) bool {
	return slices.Contains(tags, tagBot) && slices.Contains(tags, tagRepo+repo) && slices.Contains(tags, tagEnv+scope)
}

// taggedPreview reads a Worker's tags: the repository and pull request of
// a preview the bot uploaded; ok is false for any other Worker.
func taggedPreview(tags []string) (repo string, pr int, ok bool) {
	bot := false
	for _, t := range tags {
		switch {
		case t == tagBot:
			bot = true
		case strings.HasPrefix(t, tagRepo):
			repo = strings.TrimPrefix(t, tagRepo)
		case strings.HasPrefix(t, tagEnv+previewEnv):
			pr, _ = strconv.Atoi(strings.TrimPrefix(t, tagEnv+previewEnv))
		}
	}
	return repo, pr, bot && repo != "" && pr > 0
}

// generatedSecret derives a secret for one environment of a repository:
// stable across deploys, never stored, different for every repository,
// environment and name.
func generatedSecret(masterKey config.Secret, repo, scope, name string) (string, error) {
	key := masterKey.Value()
	if key == "" {
		return "", fmt.Errorf("the pipeline file asks for generated secret %s, but the bot has no master_key (set it, or %s)", name, config.EnvMasterKey)
	}
	mac := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(mac, "%s#%s/%s", repo, scope, name)
	return hex.EncodeToString(mac.Sum(nil)), nil
}
