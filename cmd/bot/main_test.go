package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

func TestMain(m *testing.M) {
	if args := os.Getenv(mainChildArgs); args != "" {
		runAsBotChild(args)
	}
	os.Exit(pgtest.Main(m))
}

// TestDemo runs the README's first quick-start command.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"demo"}, &out, &errOut, func(k string) string {
		if k == "DATABASE_URL" {
			return pgtest.ServerURL(t)
		}
		return ""
	})
	if err != nil {
		t.Fatalf("demo failed: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"✅ Preview ready", "codex-preview-1.revelations.studio", "🗑️ Preview destroyed", "The demo passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeBecomesReadyAndStopsOnSignal: serve answers its probes and,
// with public_url, the runs' pages; a signal stops it at once even while a
// browser streams a running run (the stream would otherwise hold the
// shutdown for its whole timeout, 5 minutes here).
func TestServeBecomesReadyAndStopsOnSignal(t *testing.T) {
	pool, dbURL := pgtest.NewDatabaseURL(t)
	// serve asks GitHub who the App is at start: a simulated GitHub answers.
	gh, err := ghsim.New(ghsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(gh.Handler())
	t.Cleanup(api.Close)
	gh.SetBaseURL(api.URL)
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, gh.AppPrivateKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	freeAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addr, metricsAddr := freeAddr(), freeAddr()
	cfg := writeConfig(t, "server:\n  public_url: http://"+addr+"\n  shutdown_timeout: 5m\n  metrics_address: "+metricsAddr+"\n"+
		"github:\n  v3_api_url: "+api.URL+"/\n  app:\n    integration_id: 1\n    webhook_secret: {env: HOOK_SECRET}\n    private_key: {file: "+keyFile+"}\nlog:\n  level: warn\n")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--addr", addr}, &bytes.Buffer{}, &logs, func(k string) string {
			return map[string]string{"HOOK_SECRET": "s", "DEPLOYBOT_DATABASE_URL": dbURL}[k]
		})
	}()

	// The server is another goroutine's; poll its probe until it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// server.metrics_address takes /metrics off the listener webhooks reach.
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, _ := get("http://" + addr + "/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on server.address: %d, want 404 when server.metrics_address is set", status)
	}
	status, body := get("http://" + metricsAddr + "/metrics")
	if status != http.StatusOK || !strings.Contains(body, "deploybot_queue_jobs{") || !strings.Contains(body, "deploybot_previews_alive 0") {
		t.Errorf("GET /metrics on server.metrics_address: %d\n%s", status, body)
	}

	var run int64
	if err := pool.QueryRow(context.Background(), `INSERT INTO runs (kind, repo, head_sha) VALUES ('test', 'acme/shop', 'abc') RETURNING id`).Scan(&run); err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf("http://%s/runs/%d", addr, run)
	if status, body := get(page); status != http.StatusOK || !strings.Contains(body, `<dd id="run-repo">acme/shop</dd>`) {
		t.Fatalf("the run's page: %d\n%s", status, body)
	}
	// The overview and the repository's page, served by the same handler.
	if status, body := get("http://" + addr + "/"); status != http.StatusOK || !strings.Contains(body, `<a href="repos/acme/shop">acme/shop</a>`) || !strings.Contains(body, `<section id="budget">`) {
		t.Errorf("the overview: %d\n%s", status, body)
	}
	if status, body := get("http://" + addr + "/repos/acme/shop"); status != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`data-run-id="%d"`, run)) {
		t.Errorf("the repository's page: %d\n%s", status, body)
	}
	stream, err := http.Get(page + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("the run's stream: %d", stream.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
	// A bot without repositories starts (it can answer deliveries) but
	// says what it will not do.
	if !strings.Contains(logs.String(), `repositories: none configured: deliveries are accepted, but every preview`) {
		t.Errorf("no warning about the missing repositories:\n%s", logs.String())
	}
}

func TestServeRefusesAnEmptyWebhookSecret(t *testing.T) {
	cfg := writeConfig(t, "server:\n  address: 127.0.0.1:0\n")
	err := run(context.Background(), []string{"serve", "--config", cfg}, &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "github.app.webhook_secret: is empty") {
		t.Fatalf("got %v", err)
	}
}

// TestServeRefusesWithoutTheApp: without the App's id and key the bot could
// acknowledge deliveries it can never act on; it refuses to start, naming
// the keys.
func TestServeRefusesWithoutTheApp(t *testing.T) {
	cfg := writeConfig(t, "github:\n  app:\n    webhook_secret: s\n")
	err := run(context.Background(), []string{"serve", "--config", cfg}, &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "github.app.integration_id: is not set") || !strings.Contains(err.Error(), "github.app.private_key: is not set") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), cfg) {
		t.Errorf("the error does not name the config file %s: %v", cfg, err)
	}
}

func TestMigrateCommands(t *testing.T) {
	_, dbURL := pgtest.NewDatabaseURL(t)
	cfg := writeConfig(t, "github:\n  app:\n    webhook_secret: s\n")
	getenv := func(k string) string { return map[string]string{"DEPLOYBOT_DATABASE_URL": dbURL}[k] }
	migrate := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"migrate", "--config", cfg}, args...), &out, &bytes.Buffer{}, getenv); err != nil {
			t.Fatalf("migrate %v: %v", args, err)
		}
		return out.String()
	}
	if out := migrate("status"); !strings.Contains(out, "schema is current") {
		t.Fatalf("status on a migrated database:\n%s", out)
	}
	if out := migrate("down"); !strings.Contains(out, "rolled back bot") {
		t.Fatalf("down:\n%s", out)
	}
	if out := migrate("status"); !strings.Contains(out, "pending") {
		t.Fatalf("status after down:\n%s", out)
	}
	if out := migrate("up"); !strings.Contains(out, "applied bot") {
		t.Fatalf("up:\n%s", out)
	}
	err := run(context.Background(), []string{"migrate", "--config", cfg, "sideways"}, &bytes.Buffer{}, &bytes.Buffer{}, getenv)
	if err == nil || !strings.Contains(err.Error(), `"sideways"`) {
		t.Fatalf("bad direction: %v", err)
	}
}

// TestHelpAndVersion: every command's --help says what it takes and what
// it does and is not an error; `bot version` names the build.
func TestHelpAndVersion(t *testing.T) {
	for _, c := range commands {
		if c.name == "version" || c.name == "check" {
			continue // no flags; check prints its own longer help
		}
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{c.name, "--help"}, &out, &errOut, func(string) string { return "" })
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("bot %s --help: %v, want flag.ErrHelp (exit status 0)", c.name, err)
			}
			help := errOut.String()
			if !strings.Contains(help, "Usage: bot "+c.name+" "+c.synopsis) || !strings.Contains(help, c.what) {
				t.Errorf("bot %s --help says:\n%s", c.name, help)
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &bytes.Buffer{}, func(string) string { return "" }); err != nil || !strings.HasPrefix(out.String(), "deploybot ") {
		t.Errorf("bot version: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"help"}, &out, &bytes.Buffer{}, func(string) string { return "" }); err != nil || !strings.Contains(out.String(), "--addr HOST:PORT") || !strings.Contains(out.String(), "bot version") {
		t.Errorf("bot help:\n%s", out.String())
	}
}
