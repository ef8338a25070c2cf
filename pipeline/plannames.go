package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/names"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
)

// The names a run gives its database branch, Workers and hostnames, and
// the secrets it needs from the bot's config. The runs use these functions
// and so does `bot check`, which prints them before any event arrives: what
// it shows is what a run does.

// Names are the cloud names of one environment of a pipeline file.
type Names struct {
	// Branch is the Neon branch the environment uses (production's is
	// migrated, a preview's or a test run's is created).
	Branch string
	// Workers are in the file's order.
	Workers []WorkerNames
}

// WorkerNames are one Worker's script and hostname ("" = none).
type WorkerNames struct {
	Worker   string
	Script   string
	Hostname string
}

// PreviewVars are the placeholders of a preview's names and vars.
func PreviewVars(pr int, headSHA, headRef, repoName string) map[string]string {
	return map[string]string{
		"pr":     strconv.Itoa(pr),
		"sha":    headSHA,
		"sha7":   short(headSHA),
		"branch": headRef,
		"repo":   repoName,
	}
}

// PreviewNames are the names of a preview whose placeholders are vars
// (PreviewVars). A preview hostname that cannot be made a hostname is an
// error naming the Worker.
func PreviewNames(file *repoconfig.File, vars map[string]string) (Names, error) {
	n := Names{Branch: names.BranchName(names.Expand(file.Database.PreviewBranch, vars))}
	for _, w := range file.Workers {
		wn := WorkerNames{Worker: w.Name, Script: names.ScriptName(names.Expand(w.PreviewScript, vars))}
		if w.PreviewHostname != "" {
			host, err := names.Hostname(w.PreviewHostname, vars)
			if err != nil {
				return n, fmt.Errorf("worker %s: preview_hostname: %w", w.Name, err)
			}
			wn.Hostname = host
		}
		n.Workers = append(n.Workers, wn)
	}
	return n, nil
}

// PreviewNamesApart refuses preview names, as rendered for one pull
// request, that are production's: the parent database branch, a
// production Worker or a production hostname. The pipeline file's rules
// make that unlikely; this makes it impossible, before anything is touched.
func PreviewNamesApart(file *repoconfig.File, pn Names) error {
	if pn.Branch == file.Database.Parent {
		return fmt.Errorf("database.preview_branch %q renders to %q, the parent branch: a preview never uses it", file.Database.PreviewBranch, pn.Branch)
	}
	for i, wn := range pn.Workers {
		pw := file.Workers[i]
		for _, w := range file.Workers {
			if wn.Script == w.Script {
				return fmt.Errorf("worker %s: preview_script %q renders to %q, the production script of worker %s", pw.Name, pw.PreviewScript, wn.Script, w.Name)
			}
			if wn.Hostname != "" && strings.EqualFold(wn.Hostname, w.Hostname) {
				return fmt.Errorf("worker %s: preview_hostname %q renders to %q, the production hostname of worker %s", pw.Name, pw.PreviewHostname, wn.Hostname, w.Name)
			}
		}
	}
	return nil
}

// ProductionNames are production's names: the Workers' own script names
// and hostnames, and the branch migrated on deploy (production.branch,
// else database.parent).
func ProductionNames(file *repoconfig.File) Names {
	n := Names{Branch: cmp.Or(file.Production.Branch, file.Database.Parent)}
	for _, w := range file.Workers {
		n.Workers = append(n.Workers, WorkerNames{Worker: w.Name, Script: w.Script, Hostname: w.Hostname})
	}
	return n
}

// TestBranchName is the ephemeral Neon branch of a test run of sha on
// branch (pr is 0 for a push that is not a pull request's).
func TestBranchName(file *repoconfig.File, branch, sha, repoName string, pr int) string {
	vars := map[string]string{"branch": branch, "sha": sha, "sha7": short(sha), "repo": repoName, "pr": ""}
	if pr > 0 {
		vars["pr"] = strconv.Itoa(pr)
	}
	return names.BranchName(names.Expand(file.Database.TestBranch, vars))
}

// MissingSecrets lists, as the runs would report them, the secrets file
// names that repo's section of the bot's config does not supply: each
// Worker's in previews and in production, the test stages' in the test
// environment, and a generated secret when the bot has no master key.
// No value is ever part of an error.
func MissingSecrets(cfg config.Repository, masterKey config.Secret, file *repoconfig.File, repo string) []error {
	var errs []error
	for _, env := range []string{repoconfig.EnvPreview, repoconfig.EnvProduction} {
		for _, w := range file.Workers {
			for _, name := range file.BindingsIn(w, env).Secrets {
				if _, err := secretIn(cfg, file, repo, env, w.Name, name); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for _, name := range file.Tests.Secrets {
		if err := testSecretMissing(cfg, file, repo, name); err != nil {
			errs = append(errs, err)
		}
	}
	if masterKey.Value() == "" {
		var generated []string
		for _, env := range []string{repoconfig.EnvPreview, repoconfig.EnvProduction} {
			for _, w := range file.Workers {
				for _, name := range file.BindingsIn(w, env).Generated {
					if !slices.Contains(generated, name) {
						generated = append(generated, name)
					}
				}
			}
		}
		for _, name := range generated {
			_, err := generatedSecret(masterKey, repo, "", name)
			errs = append(errs, err)
		}
	}
	return errs
}

// testSecretMissing is the error of a test run whose secret name the
// config's test environment lacks, nil when it is there.
func testSecretMissing(cfg config.Repository, file *repoconfig.File, repo, name string) error {
	if _, ok, where := cfg.SecretIn(repoconfig.EnvTest, name); !ok {
		return fmt.Errorf("the test stages need secret %s (%s) in the test environment, which the bot's config does not hold: set repositories.%s.%s",
			name, file.Where(file.SecretKey("", repoconfig.EnvTest, name)), repo, where)
	}
	return nil
}
