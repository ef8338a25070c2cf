package repoconfig_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/repoconfig"
)

const wranglerTOML = `# apps/web/wrangler.toml
name = "codex-web"
main = "dist/index.js"
compatibility_date = "2025-01-01"
compatibility_flags = ["nodejs_compat"]
workers_dev = false
routes = [{ pattern = "codex.example.com", custom_domain = true }]

[vars]
STRIPE_MODE = "test"
LOG = "info"

[[services]]
binding = "API"
service = "ecom-api"

[assets]
directory = "dist/public"
binding = "ASSETS"

[observability]
enabled = true

[env.staging]
name = "codex-web-staging"
`

const wranglerJSONC = `// apps/api/wrangler.jsonc
{
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "ecom-api", /* the production script */
  "main": "dist/index.js",
  "compatibility_date": "2025-02-02",
  "vars": { "URL": "https://api.example.com" }, // a comment
}
`

const pipelineWithWrangler = `database: {project: p-1}
workers:
  - name: web
    wrangler: apps/web/wrangler.toml
    hostname: codex.example.com
    vars: {LOG: debug}
  - name: api
    wrangler: apps/api/wrangler.jsonc
    compatibility_date: "2025-03-03"
`

func reader(files map[string]string) repoconfig.Reader {
	return func(path string) ([]byte, error) {
		s, ok := files[path]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return []byte(s), nil
	}
}

// TestWranglerFiles: a Worker takes what its wrangler file says (paths
// from the file's folder) unless the pipeline file says otherwise.
func TestWranglerFiles(t *testing.T) {
	f, err := repoconfig.ParseWith(repoconfig.Path, []byte(pipelineWithWrangler), reader(map[string]string{
		"apps/web/wrangler.toml":  wranglerTOML,
		"apps/api/wrangler.jsonc": wranglerJSONC,
	}))
	if err != nil {
		t.Fatal(err)
	}
	web, api := f.Workers[0], f.Workers[1]
	got := fmt.Sprintf("%s %s %s %s %v %v %v %s %s", web.Script, web.Dir, web.Main, web.CompatibilityDate, web.CompatibilityFlags, web.Vars, web.Services, web.Assets, web.AssetsBinding)
	if want := "codex-web apps/web dist/index.js 2025-01-01 [nodejs_compat] map[LOG:debug STRIPE_MODE:test] [{API api}] dist/public ASSETS"; got != want {
		t.Errorf("web:\n got %s\nwant %s", got, want)
	}
	got = fmt.Sprintf("%s %s %s %s %v", api.Script, api.Dir, api.Main, api.CompatibilityDate, api.Vars)
	if want := "ecom-api apps/api dist/index.js 2025-03-03 map[URL:https://api.example.com]"; got != want {
		t.Errorf("api:\n got %s\nwant %s", got, want)
	}
}

func TestWranglerErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct{ name, file, want string }{
		{"a binding the bot cannot create", wranglerTOML + "\n[[kv_namespaces]]\nbinding = \"CACHE\"\nid = \"abc\"\n",
			"apps/web/wrangler.toml:27: kv_namespaces: the bot cannot deploy this yet: remove it from the file, or deploy this Worker with wrangler"},
		{"cron triggers", strings.Replace(wranglerTOML, "[observability]", "[triggers]\ncrons = [\"0 * * * *\"]\n\n[observability]", 1),
			"apps/web/wrangler.toml:21: triggers: the bot cannot deploy this yet"},
		{"a wrong type", strings.Replace(wranglerTOML, `compatibility_date = "2025-01-01"`, "compatibility_date = 2025", 1),
			"apps/web/wrangler.toml:4: compatibility_date:"},
		{"a service the file does not deploy", strings.Replace(wranglerTOML, `service = "ecom-api"`, `service = "billing"`, 1),
			`apps/web/wrangler.toml:15: services[0].service: "billing" is not the script of a worker of .github/deploybot.yml`},
		{"a var that is not text", wranglerTOML + "\n[vars.LIMITS]\nmax = 3\n", "apps/web/wrangler.toml:27: vars.LIMITS: only text vars are supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := repoconfig.ParseWith(repoconfig.Path, []byte(pipelineWithWrangler), reader(map[string]string{
				"apps/web/wrangler.toml": c.file, "apps/api/wrangler.jsonc": wranglerJSONC,
			}))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant it to contain %q", err, c.want)
			}
		})
	}
	_, err := repoconfig.ParseWith(repoconfig.Path, []byte(pipelineWithWrangler), reader(map[string]string{"apps/api/wrangler.jsonc": wranglerJSONC}))
	if err == nil || !strings.Contains(err.Error(), "apps/web/wrangler.toml: cannot be read") || !errors.Is(err, fs.ErrNotExist) && !strings.Contains(err.Error(), "not exist") {
		t.Errorf("missing file: %v", err)
	}
	jsonc := strings.Replace(wranglerJSONC, `"vars"`, `"d1_databases": [],`+"\n  "+`"vars"`, 1)
	_, err = repoconfig.ParseWith(repoconfig.Path, []byte(pipelineWithWrangler), reader(map[string]string{"apps/web/wrangler.toml": wranglerTOML, "apps/api/wrangler.jsonc": jsonc}))
	if err == nil || !strings.Contains(err.Error(), "apps/api/wrangler.jsonc:7: d1_databases: the bot cannot deploy this yet") {
		t.Errorf("jsonc with d1: %v", err)
	}
	if _, err := repoconfig.Parse(repoconfig.Path, []byte(pipelineWithWrangler)); err == nil || !strings.Contains(err.Error(), ":4: workers[0].wrangler: wrangler files cannot be read here") {
		t.Errorf("Parse without a reader: %v", err)
	}
}

// FuzzWranglerFile: any wrangler file is read or refused with an error,
// never a panic, in both formats.
func FuzzWranglerFile(f *testing.F) {
	f.Add([]byte(wranglerTOML), true)
	f.Add([]byte(wranglerJSONC), false)
	f.Add([]byte(`{"name": "a", /* unclosed`), false)
	f.Fuzz(func(t *testing.T, data []byte, toml bool) {
		file := "apps/api/wrangler.jsonc"
		if toml {
			file = "apps/api/wrangler.toml"
		}
		pipeline := "database: {project: p}\nworkers:\n  - {name: api, wrangler: " + file + "}\n"
		_, _ = repoconfig.ParseWith(repoconfig.Path, []byte(pipeline), reader(map[string]string{file: string(data)}))
	})
}
