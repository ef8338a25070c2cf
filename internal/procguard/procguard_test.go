package procguard

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The checks run in a child process (this test binary re-executed), so the
// test process keeps its environment and stays dumpable.
const childEnv = "PROCGUARD_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "forget":
		os.Exit(childForget())
	case "dumpable":
		os.Exit(childDumpable())
	}
	os.Exit(m.Run())
}

func runChild(t *testing.T, mode string, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + mode}, env...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	return string(out)
}

func childForget() int {
	kept := strings.Clone(os.Getenv("DEPLOYBOT_WEBHOOK_SECRET"))
	if err := ForgetEnv([]string{"DEPLOYBOT_WEBHOOK_SECRET", "DEPLOYBOT_NEON_API_KEY_FILE", "NOT_SET_AT_ALL"}); err != nil {
		os.Stdout.WriteString("ForgetEnv: " + err.Error() + "\n")
		return 1
	}
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		os.Stdout.WriteString("read environ: " + err.Error() + "\n")
		return 1
	}
	os.Stdout.WriteString("kept=" + kept + "\n")
	os.Stdout.WriteString("getenv=" + os.Getenv("DEPLOYBOT_WEBHOOK_SECRET") + os.Getenv("DEPLOYBOT_NEON_API_KEY_FILE") + "\n")
	os.Stdout.WriteString("other=" + os.Getenv("UNRELATED_VAR") + "\n")
	os.Stdout.WriteString("environ=" + string(bytes.ReplaceAll(environ, []byte{0}, []byte{' '})) + "\n")
	os.Stdout.WriteString("os.Environ=" + strings.Join(os.Environ(), " ") + "\n")
	return 0
}

func TestForgetEnvLeavesNoTrace(t *testing.T) {
	out := runChild(t, "forget",
		"DEPLOYBOT_WEBHOOK_SECRET=hook-s3cret", "DEPLOYBOT_NEON_API_KEY_FILE=/run/secrets/neon-path", "UNRELATED_VAR=stays")
	for _, secret := range []string{"hook-s3cret", "neon-path", "DEPLOYBOT_WEBHOOK_SECRET=", "DEPLOYBOT_NEON_API_KEY_FILE="} {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "environ=") || strings.HasPrefix(line, "os.Environ=") || strings.HasPrefix(line, "getenv=") {
				if strings.Contains(line, secret) {
					t.Errorf("%q still visible after ForgetEnv: %s", secret, line)
				}
			}
		}
	}
	if !strings.Contains(out, "kept=hook-s3cret\n") {
		t.Errorf("a value copied before ForgetEnv was damaged:\n%s", out)
	}
	if !strings.Contains(out, "other=stays\n") || !strings.Contains(out, "UNRELATED_VAR=stays") {
		t.Errorf("ForgetEnv touched an unrelated variable:\n%s", out)
	}
}

func childDumpable() int {
	before, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		os.Stdout.WriteString("PR_GET_DUMPABLE: " + err.Error() + "\n")
		return 1
	}
	if err := NotDumpable(); err != nil {
		os.Stdout.WriteString("NotDumpable: " + err.Error() + "\n")
		return 1
	}
	// This kernel's /proc/self/status may have no Dumpable line; the flag
	// the kernel checks for /proc/<pid>/environ and ptrace is this one.
	after, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		os.Stdout.WriteString("PR_GET_DUMPABLE: " + err.Error() + "\n")
		return 1
	}
	fmt.Printf("before=%d after=%d\n", before, after)
	return 0
}

func TestNotDumpable(t *testing.T) {
	out := runChild(t, "dumpable")
	if out != "before=1 after=0\n" {
		t.Fatalf("want the child dumpable before NotDumpable and not after, got %q", out)
	}
}
