package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/repoconfig"
)

func TestTaggedPreview(t *testing.T) {
	cases := []struct {
		tags []string
		repo string
		pr   int
		ok   bool
	}{
		{scriptTags("acme/app", "pr-7"), "acme/app", 7, true},
		{scriptTags("acme/app", "production"), "acme/app", 0, false},
		{[]string{"deploybot-repo:acme/app", "deploybot-env:pr-7"}, "acme/app", 7, false}, // not marked as the bot's
		{[]string{"deploybot", "deploybot-env:pr-7"}, "", 7, false},
		{[]string{"deploybot", "deploybot-repo:acme/app", "deploybot-env:pr-x"}, "acme/app", 0, false},
		{nil, "", 0, false},
	}
	for _, c := range cases {
		repo, pr, ok := taggedPreview(c.tags)
		if repo != c.repo || pr != c.pr || ok != c.ok {
			t.Errorf("taggedPreview(%q) = %q, %d, %v; want %q, %d, %v", c.tags, repo, pr, ok, c.repo, c.pr, c.ok)
		}
	}
}

// The build may leave a symlink where the Worker's module should be; the
// upload reads modules through an os.Root at the workspace, so a link to a
// host file (or a worker folder that is itself such a link) fails with the
// module's name instead of putting the file into a Worker.
func TestBuildScriptReadsOnlyInsideTheWorkspace(t *testing.T) {
	hostFile := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(hostFile, []byte("webhook_secret: host-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	worker := repoconfig.Worker{Name: "web", Dir: "web", Main: "dist/index.js", Modules: []string{"dist/lib.js"}, CompatibilityDate: "2025-01-01"}
	cases := []struct {
		name    string
		prepare func(t *testing.T, ws string)
		wantErr string // "" for success
	}{
		{"regular files, and a relative symlink inside the workspace", func(t *testing.T, ws string) {
			write(t, filepath.Join(ws, "web/dist/index.js"), "export default {}")
			write(t, filepath.Join(ws, "shared/lib.js"), "export const x = 1")
			link(t, "../../shared/lib.js", filepath.Join(ws, "web/dist/lib.js"))
		}, ""},
		{"the main module links to a host file", func(t *testing.T, ws string) {
			link(t, hostFile, filepath.Join(ws, "web/dist/index.js"))
			write(t, filepath.Join(ws, "web/dist/lib.js"), "export const x = 1")
		}, "module web/dist/index.js leads outside the workspace"},
		{"a module links out of the workspace by a relative path", func(t *testing.T, ws string) {
			write(t, filepath.Join(ws, "web/dist/index.js"), "export default {}")
			link(t, strings.Repeat("../", 20)+strings.TrimPrefix(hostFile, "/"), filepath.Join(ws, "web/dist/lib.js"))
		}, "module web/dist/lib.js leads outside the workspace"},
		{"the worker's folder links out of the workspace", func(t *testing.T, ws string) {
			outside := t.TempDir()
			write(t, filepath.Join(outside, "dist/index.js"), "export default {}")
			write(t, filepath.Join(outside, "dist/lib.js"), "export const x = 1")
			link(t, outside, filepath.Join(ws, "web"))
		}, "module web/dist/index.js leads outside the workspace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ws := t.TempDir()
			c.prepare(t, ws)
			script, err := buildScript(Deps{}, "acme/app", scriptSpec{worker: worker, name: "web-preview-1", workspace: ws, scope: "pr-1"}, &Log{})
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(script.Modules) != 2 || string(script.Modules[1].Content) != "export const x = 1" {
					t.Fatalf("modules = %v", script.Modules)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("buildScript error = %v, want %q", err, c.wantErr)
			}
			for _, m := range script.Modules {
				if strings.Contains(string(m.Content), "host-secret") {
					t.Fatalf("the host file was read into module %s", m.Name)
				}
			}
		})
	}
}

func write(t *testing.T, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, target, file string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, file); err != nil {
		t.Fatal(err)
	}
}

// TestModuleGlobs: modules may be globs over what the build wrote, matched
// inside the workspace only; one that matches nothing is an error.
func TestModuleGlobs(t *testing.T) {
	ws := t.TempDir()
	write(t, filepath.Join(ws, "web/dist/index.js"), "export default {}")
	write(t, filepath.Join(ws, "web/dist/chunks/b.js"), "export const b = 1")
	write(t, filepath.Join(ws, "web/dist/chunks/a.js"), "export const a = 1")
	write(t, filepath.Join(ws, "web/dist/chunks/a.js.map"), "{}")
	worker := repoconfig.Worker{Name: "web", Dir: "web", Main: "dist/index.js", Modules: []string{"dist/chunks/*.js", "dist/chunks/a.js"}, CompatibilityDate: "2025-01-01"}
	script, err := buildScript(Deps{}, "acme/app", scriptSpec{worker: worker, name: "web-preview-1", workspace: ws, scope: "pr-1"}, &Log{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range script.Modules {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, " "); got != "index.js chunks/a.js chunks/b.js" {
		t.Errorf("modules = %s, want index.js chunks/a.js chunks/b.js", got)
	}
	worker.Modules = []string{"dist/missing/*.js"}
	if _, err := buildScript(Deps{}, "acme/app", scriptSpec{worker: worker, name: "web-preview-1", workspace: ws, scope: "pr-1"}, &Log{}); err == nil || !strings.Contains(err.Error(), `modules "dist/missing/*.js" matches no file`) {
		t.Errorf("a glob matching nothing: %v", err)
	}
}
