package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
	"github.com/revelations-studio/deploybot/internal/store"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// simulatedGitHub serves a simulated GitHub and writes its App's private
// key to a file, for configs that point the bot at it.
func simulatedGitHub(t *testing.T) (gh *ghsim.Server, apiURL, keyFile string) {
	t.Helper()
	gh, err := ghsim.New(ghsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(gh.Handler())
	t.Cleanup(api.Close)
	gh.SetBaseURL(api.URL)
	keyFile = filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, gh.AppPrivateKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return gh, api.URL + "/", keyFile
}

// closedURL is an http URL where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/"
}

// TestServeRefusesBeforeTheDatabase: each start-up refusal of `bot serve`
// is one line naming the config file, the key and what to do, given before
// the bot starts its PostgreSQL (no data_dir/postgres is made) or asks
// GitHub anything.
func TestServeRefusesBeforeTheDatabase(t *testing.T) {
	_, apiURL, keyFile := simulatedGitHub(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrongKeyFile := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(wrongKeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(otherKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	noGitHub := closedURL(t)
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Lines: 1 data_dir, 2 runner, 3 github, 4 v3_api_url, 5 app, 6 integration_id, 7 webhook_secret, 8 private_key.
	config := func(v3 string, id int, key string, rest string) string {
		return fmt.Sprintf("data_dir: {data}\nrunner: {isolation: none}\ngithub:\n  v3_api_url: %s\n  app:\n    integration_id: %d\n    webhook_secret: s\n    private_key: {file: %s}\n%s", v3, id, key, rest)
	}
	const repo = "repositories:\n  acme/app: {cloudflare: {account_id: acc, zone_id: zone}}\n"
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"a repository without its cloud credentials", config(apiURL, 1, keyFile, "master_key: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"+repo), []string{
			"{cfg}: cloudflare.api_token: is not set, but repository acme/app deploy Workers to Cloudflare (set it, or DEPLOYBOT_CLOUDFLARE_API_TOKEN)",
			"{cfg}: neon.api_key: is not set, but repository acme/app make Neon database branches for previews and tests (a pipeline file with Workers names a database.project) (set it, or DEPLOYBOT_NEON_API_KEY)",
		}},
		{"a weak master key", config(apiURL, 1, keyFile, "neon: {api_key: n}\ncloudflare: {api_token: c}\nmaster_key: short\n"+repo), []string{
			"{cfg}:11: master_key: is too weak: it holds 5 bytes (read as text), at least 32 random bytes are needed: 64 hex digits (openssl rand -hex 32) or 44 base64 characters (openssl rand -base64 32)",
		}},
		{"a certificate for a key", config(apiURL, 1, certFile, ""), []string{
			`{cfg}:8: github.app.private_key: the key from file ` + certFile + ` is a PEM block "CERTIFICATE", not an RSA private key (the file GitHub gives begins with -----BEGIN RSA PRIVATE KEY-----)`,
		}},
		{"a wrong App id", config(apiURL, 2, keyFile, ""), []string{
			`{cfg}:6: github.app.integration_id: GitHub refused App id 2 with github.app.private_key (from file ` + keyFile + `): GET ` + apiURL + `app answered 401 Unauthorized ("Integration not found (iss \"2\")"): check the id (the App's settings page, "App ID") and that the key is this App's`,
		}},
		{"another App's key", config(apiURL, 1, wrongKeyFile, ""), []string{
			`{cfg}:6: github.app.integration_id: GitHub refused App id 1 with github.app.private_key (from file ` + wrongKeyFile + `): GET ` + apiURL + `app answered 401 Unauthorized ("'Issuer' claim ('iss') must be an Integer, or the JWT signature does not match the App's public key"): check the id (the App's settings page, "App ID") and that the key is this App's`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, strings.ReplaceAll(c.yaml, "{data}", dir))
			var logs bytes.Buffer
			err := run(context.Background(), []string{"serve", "--config", cfg}, &bytes.Buffer{}, &logs, func(string) string { return "" })
			if err == nil {
				t.Fatal("serve started")
			}
			want := strings.ReplaceAll(strings.Join(c.want, "\n"), "{cfg}", cfg)
			if err.Error() != want {
				t.Errorf("serve refused with:\n%s\nwant:\n%s", err, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "postgres")); !os.IsNotExist(err) {
				t.Errorf("a PostgreSQL cluster was made before the refusal (%v)", err)
			}
		})
	}

	// An unreachable GitHub: the error names the URL asked.
	cfg := writeConfig(t, strings.ReplaceAll(config(noGitHub, 1, keyFile, ""), "{data}", t.TempDir()))
	err = run(context.Background(), []string{"serve", "--config", cfg}, &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
	prefix := cfg + ":4: github.v3_api_url: GitHub did not answer GET " + noGitHub + "app: "
	if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), "connection refused (check the URL and the network)") {
		t.Errorf("serve with GitHub unreachable: %v\nwant %q…", err, prefix)
	}
}

// sweepConfig is a config for `bot sweep` against the simulated GitHub with
// one repository; extra adds keys.
func sweepConfig(t *testing.T, apiURL, keyFile, extra string) string {
	return writeConfig(t, fmt.Sprintf(`data_dir: %s
github:
  v3_api_url: %s
  app: {integration_id: 1, webhook_secret: s, private_key: {file: %s}}
log: {level: warn}
repositories:
  acme/app: {cloudflare: {account_id: acc, zone_id: zone}}
%s`, t.TempDir(), apiURL, keyFile, extra))
}

// withPreview is a database whose bot remembers a ready preview of
// acme/app#5 (a pull request GitHub does not have: as good as closed), in
// Neon project proj-5.
func withPreview(t *testing.T) string {
	t.Helper()
	pool, dbURL := pgtest.NewDatabaseURL(t)
	ctx := context.Background()
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		t.Fatal(err)
	}
	previews := state.New(pool).Previews
	p, err := previews.Load(ctx, "acme/app", 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	p.State = "ready"
	p.Resources = state.Resources{Project: "proj-5", Branch: "pr-5", AccountID: "acc", ZoneID: "zone",
		Workers: []state.DeployedWorker{{Name: "web", Script: "app-web-preview-5"}}}
	if err := previews.Save(ctx, p); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// TestSweepDryRunWithoutCloudCredentials: a dry run decides from the bot's
// database and GitHub; without the Cloudflare token and Neon key it still
// lists the previews to remove, and says which search it skipped.
func TestSweepDryRunWithoutCloudCredentials(t *testing.T) {
	_, apiURL, keyFile := simulatedGitHub(t)
	dbURL := withPreview(t)
	cfg := sweepConfig(t, apiURL, keyFile, "")
	var out, logs bytes.Buffer
	err := run(context.Background(), []string{"sweep", "--config", cfg, "--dry-run"}, &out, &logs, func(k string) string {
		return map[string]string{"DEPLOYBOT_DATABASE_URL": dbURL}[k]
	})
	if err != nil {
		t.Fatalf("sweep --dry-run: %v\n%s\n%s", err, out.String(), logs.String())
	}
	want := "skipping orphaned Neon branches: " + cfg + ": neon.api_key: is not set\n" +
		"skipping orphaned Cloudflare Workers: " + cfg + ": cloudflare.api_token: is not set\n" +
		"would remove acme/app #5 preview: pull request is closed\n"
	if out.String() != want {
		t.Errorf("sweep --dry-run printed:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestSweepDryRunReportsUnreachableAPIs: an API that fails is reported
// after one retry, and one that does not answer with its URL, rather than
// waited out.
func TestSweepDryRunReportsUnreachableAPIs(t *testing.T) {
	_, apiURL, keyFile := simulatedGitHub(t)
	var calls atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"message":"down for maintenance","success":false,"errors":[{"code":7000,"message":"down for maintenance"}]}`))
	}))
	t.Cleanup(failing.Close)
	down := strings.TrimSuffix(closedURL(t), "/")
	for _, c := range []struct {
		name, neon, cloudflare string
		want                   []string
	}{
		{"Neon failing, Cloudflare down", failing.URL, down, []string{
			"neon: list branches in project proj-5: 503 Service Unavailable: down for maintenance",
			`cloudflare: list workers "*": Get "` + down + `/accounts/acc/workers/scripts": dial tcp`,
		}},
		{"Neon down, Cloudflare failing", down, failing.URL, []string{
			`Get "` + down + `/projects/proj-5/branches?limit=100": dial tcp`,
			"cloudflare: list workers \"*\": 503",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls.Store(0)
			dbURL := withPreview(t)
			cfg := sweepConfig(t, apiURL, keyFile, fmt.Sprintf("neon: {api_url: %s, api_key: n}\ncloudflare: {api_url: %s, api_token: c}\n", c.neon, c.cloudflare))
			var out, logs bytes.Buffer
			err := run(context.Background(), []string{"sweep", "--config", cfg, "--dry-run"}, &out, &logs, func(k string) string {
				return map[string]string{"DEPLOYBOT_DATABASE_URL": dbURL}[k]
			})
			if err == nil {
				t.Fatalf("sweep --dry-run succeeded with the APIs down:\n%s", out.String())
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q:\n%v", want, err)
				}
			}
			if n := calls.Load(); n != 2 {
				t.Errorf("the failing API was asked %d times, want 2 (one retry)", n)
			}
			if !strings.Contains(out.String(), "would remove acme/app #5 preview: pull request is closed") || strings.Contains(out.String(), "nothing to sweep") {
				t.Errorf("sweep --dry-run printed:\n%s", out.String())
			}
		})
	}
}

// TestProbe: `bot probe` is the image's HEALTHCHECK: 0 for a 2xx, an error
// (exit status 1) naming the URL for anything else.
func TestProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	probe := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"probe"}, args...), &out, &bytes.Buffer{}, func(string) string { return "" })
		return out.String(), err
	}
	url := srv.URL + "/healthz"
	if out, err := probe("--url", url); err != nil || out != "GET "+url+": 200 OK\n" {
		t.Errorf("healthy: %q, %v", out, err)
	}
	status.Store(http.StatusServiceUnavailable)
	if _, err := probe("--url", url); err == nil || err.Error() != "probe: GET "+url+" answered 503 Service Unavailable" {
		t.Errorf("503: %v", err)
	}
	down := closedURL(t) + "healthz"
	if _, err := probe("--url", down); err == nil || !strings.Contains(err.Error(), down) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable: %v", err)
	}
	if _, err := probe("--url", "::"); err == nil || !strings.Contains(err.Error(), `--url "::"`) {
		t.Errorf("a bad URL: %v", err)
	}
}
