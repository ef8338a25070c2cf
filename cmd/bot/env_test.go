package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/revelations-studio/deploybot/internal/pgtest"
)

// mainChildArgs, when set, makes this test binary act as the bot: it runs
// main with these arguments (separated by \x1f, the unit separator), then prints what a
// process reading its environment would find. The checks run in a child so
// the test process keeps its environment and stays dumpable.
const mainChildArgs = "DEPLOYBOT_TEST_MAIN_ARGS"

// runAsBotChild is called from TestMain.
func runAsBotChild(args string) {
	os.Args = append([]string{"bot"}, strings.Split(args, "\x1f")...)
	main() // exits non-zero on failure
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		fmt.Println("read /proc/self/environ:", err)
		os.Exit(1)
	}
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		fmt.Println("PR_GET_DUMPABLE:", err)
		os.Exit(1)
	}
	fmt.Printf("dumpable=%d\n", dumpable)
	oneLine := strings.NewReplacer("\x00", " ", "\n", " ")
	fmt.Printf("proc-environ=%s\n", oneLine.Replace(string(environ)))
	fmt.Printf("os-environ=%s\n", oneLine.Replace(strings.Join(os.Environ(), " ")))
	os.Exit(0)
}

// TestSecretsLeaveTheEnvironment runs the bot's real entry point with its
// secrets in the environment, as README shows, and checks that once the
// config is loaded no process could read them from the bot's environment,
// and that the process is not dumpable.
func TestSecretsLeaveTheEnvironment(t *testing.T) {
	_, dbURL := pgtest.NewDatabaseURL(t)
	hookFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(hookFile, []byte("hook-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, `repositories:
  acme/app:
    cloudflare: {account_id: acc, zone_id: zone}
    secrets: {STRIPE_SECRET_KEY: {env: ACME_STRIPE}}
`)
	secrets := map[string]string{
		"DEPLOYBOT_DATABASE_URL":         dbURL,
		"DEPLOYBOT_WEBHOOK_SECRET_FILE":  hookFile,
		"DEPLOYBOT_NEON_API_KEY":         "neon-key-4242",
		"DEPLOYBOT_CLOUDFLARE_API_TOKEN": "cf-token-4242",
		"DEPLOYBOT_MASTER_KEY":           "master-key-4242",
		"ACME_STRIPE":                    "sk_live_4242",
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "UNRELATED=kept",
		mainChildArgs + "=" + strings.Join([]string{"migrate", "--config", cfg, "status"}, "\x1f")}
	for k, v := range secrets {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bot migrate status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "schema is current") {
		t.Fatalf("the bot did not run with the secrets it was given:\n%s", out)
	}
	var procEnv, osEnv string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "proc-environ="); ok {
			procEnv = v
		}
		if v, ok := strings.CutPrefix(line, "os-environ="); ok {
			osEnv = v
		}
	}
	if !strings.Contains(procEnv, "UNRELATED=kept") || !strings.Contains(osEnv, "UNRELATED=kept") {
		t.Fatalf("the environment lost a variable that is no secret:\n%s", out)
	}
	for k, v := range secrets {
		for where, env := range map[string]string{"/proc/self/environ": procEnv, "os.Environ": osEnv} {
			if strings.Contains(env, k+"=") || strings.Contains(env, v) {
				t.Errorf("%s still holds %s after start-up", where, k)
			}
		}
	}
	if !strings.Contains(string(out), "dumpable=0\n") {
		t.Errorf("the bot's process is dumpable:\n%s", out)
	}
}
