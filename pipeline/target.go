package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/buildcache"
	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/workspace"
)

// target is what the bot's config says of a repository a pipeline deploys:
// its Cloudflare account and zone, how hostnames are attached, its secret
// values and command rules. Preview and production look it up the same
// way.
type target struct {
	repo string
	cfg  config.Repository
	mode cloudflare.HostnameMode
}

// targetOf looks repo ("owner/name") up in the bot's config.
func targetOf(deps Deps, repo string) (target, error) {
	cfg, ok := deps.Repositories[repo]
	if !ok {
		return target{}, fmt.Errorf("repository %s is not configured in the bot's config (add it under repositories: with its Cloudflare account and zone)", repo)
	}
	mode := cloudflare.ModeCustomDomain
	if cfg.Cloudflare.Hostnames == "dns_route" {
		mode = cloudflare.ModeDNSRoute
	}
	return target{repo: repo, cfg: cfg, mode: mode}, nil
}

// commandEnv is the environment every repository command of a run starts
// from: the CI context, which environment it is, which repository and
// commit. Runs add their own (the pull request, the branch, the stage);
// values a pull request controls are data in variables, never part of a
// command.
func commandEnv(environment, repo, sha string) map[string]string {
	return map[string]string{
		"CI":                    "true",
		"DEPLOYBOT":             "true",
		"DEPLOYBOT_ENVIRONMENT": environment,
		"DEPLOYBOT_REPO":        repo,
		"DEPLOYBOT_SHA":         sha,
	}
}

// withEnvironmentVars adds the pipeline file's vars of environment name
// (placeholders filled in) to a command environment, under the bot's own:
// a var cannot change DEPLOYBOT_* or DATABASE_URL.
func withEnvironmentVars(env map[string]string, file *repoconfig.File, name string, placeholders map[string]string) map[string]string {
	return withEnv(expandVars(file.Environments.Of(name).Vars, placeholders), env)
}

// sourceStep fetches the repository at sha into ws: the first step of a
// preview and of a production run.
func sourceStep(repo Repo, repoName, sha string, ws *workspace.Workspace) Step {
	return Step{Name: "source", Do: func(ctx context.Context, log *Log) error {
		tar, err := repo.Tarball(ctx, sha)
		if err != nil {
			return err
		}
		defer tar.Close()
		stats, err := ws.Extract(ctx, tar, workspace.Limits{})
		if err != nil {
			return err
		}
		log.Printf("%s at %s: %+v", repoName, short(sha), stats)
		return nil
	}}
}

// cacheUse is which build-cache entries a run may use: it restores from
// the scopes in restore, first found first, and saves to save ("": never,
// a fork's run).
type cacheUse struct {
	repo    string
	restore []string
	save    string
}

// cacheFor is the cache use of a run of repo on branch (the default
// branch's runs share theirs with every branch; a branch's own entries
// serve only that branch).
func cacheFor(repo, branch, defaultBranch string, fork bool) cacheUse {
	switch {
	case fork:
		return cacheUse{repo: repo, restore: []string{buildcache.DefaultScope}}
	case branch == defaultBranch:
		return cacheUse{repo: repo, restore: []string{buildcache.DefaultScope}, save: buildcache.DefaultScope}
	}
	own := "branch:" + branch
	return cacheUse{repo: repo, restore: []string{own, buildcache.DefaultScope}, save: own}
}

// setupStep runs the pipeline file's setup command once in dir, after the
// source step, for the steps that need what it installs: with setup.cache,
// the cached folders are put back first and saved after it succeeded. Its
// name is stepName; env is the run's command environment.
func setupStep(deps Deps, file *repoconfig.File, stepName, after string, dir func() string, env func() map[string]string, untrusted bool, use cacheUse) Step {
	return Step{Name: stepName, Needs: []string{after}, Do: func(ctx context.Context, log *Log) error {
		timeout := 15 * time.Minute
		if file.Setup.Timeout != "" {
			timeout, _ = time.ParseDuration(file.Setup.Timeout) // validated by repoconfig
		}
		c := file.Setup.Cache
		cached := deps.Cache != nil && len(c.Paths) > 0
		var key, hit string
		if cached {
			var err error
			if key, err = buildcache.Key(dir(), c.Key, c.Paths); err != nil {
				return err
			}
			if hit, err = deps.Cache.Restore(ctx, use.repo, use.restore, key, dir(), c.Paths); err != nil {
				return err
			}
			if hit != "" {
				log.Printf("cache: %s restored (%s, key %s)", strings.Join(c.Paths, ", "), hit, key[:12])
			} else {
				log.Printf("cache: nothing cached for key %s", key[:12])
			}
		}
		if err := runCommand(ctx, deps.Commands, log, runner.Command{Script: file.Setup.Run, Dir: dir(), Workspace: dir(), Env: env(), Timeout: timeout, Untrusted: untrusted}); err != nil {
			return err
		}
		if cached && use.save != "" && hit != use.save {
			if err := deps.Cache.Save(ctx, use.repo, use.save, key, dir(), c.Paths); err != nil {
				log.Printf("cache: not saved: %v", err) // the run goes on; the next one installs again
			} else {
				log.Printf("cache: %s saved (%s)", strings.Join(c.Paths, ", "), use.save)
			}
		}
		return nil
	}}
}

// fileAt reads the repository's files at ref: the wrangler files a
// pipeline file read at ref names.
func fileAt(ctx context.Context, repo Repo, ref string) repoconfig.Reader {
	return func(path string) ([]byte, error) { return repo.File(ctx, path, ref) }
}
