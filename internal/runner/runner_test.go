package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// Orphans of killed scripts are re-parented to the nearest subreaper.
	// Becoming one lets the tests see Run reap its own group's zombies, as
	// it must when the bot is PID 1 in a container; without it they would
	// wait for an init that, on some machines, never reaps.
	becomeSubreaper()
	os.Exit(m.Run())
}

func run(t *testing.T, c Command) Result {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatalf("Run(%q): %v", c.Script, err)
	}
	return res
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"true", 0},
		{"exit 3", 3},
		{"false", 1},
		{"nonexistent-command-xyz", 127},
		{"kill -KILL $$", 128 + 9},
	} {
		res := run(t, Command{Script: tc.script})
		if res.ExitCode != tc.want || res.TimedOut || res.Cancelled {
			t.Errorf("%q: %+v, want exit %d", tc.script, res, tc.want)
		}
		if (res.Err() == nil) != (tc.want == 0) {
			t.Errorf("%q: Err() = %v", tc.script, res.Err())
		}
	}
	if err := run(t, Command{Script: "exit 3"}).Err(); err == nil || !strings.Contains(err.Error(), "status 3") {
		t.Errorf("Err() = %v, want it to name status 3", err)
	}
}

func TestShellByName(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	res := run(t, Command{Shell: "bash", Script: `echo "${BASH_VERSION:+bash}"`})
	if res.Output != "bash\n" {
		t.Errorf("Output = %q, want the script run by bash", res.Output)
	}
}

func TestOutputInterleavedInOrder(t *testing.T) {
	res := run(t, Command{Script: "echo out1; echo err1 >&2; echo out2; echo err2 >&2"})
	if res.Output != "out1\nerr1\nout2\nerr2\n" || res.Truncated {
		t.Errorf("Output = %q", res.Output)
	}
}

func TestEnvironmentIsOnlyWhatTheCallerPasses(t *testing.T) {
	t.Setenv("DEPLOYBOT_GITHUB_PRIVATE_KEY", "bot-credential-must-not-leak")
	dir := t.TempDir()
	// A hostile branch name is data in the environment, never code.
	branch := `feat/$(touch pwned)";touch pwned2;"`
	res := run(t, Command{
		Dir:    dir,
		Script: `env; echo "branch=$DEPLOYBOT_BRANCH"; test -d "$HOME" && test -w "$HOME" && echo home-ok; pwd`,
		Env:    map[string]string{"DATABASE_URL": "postgres://x", "DEPLOYBOT_BRANCH": branch},
	})
	if res.ExitCode != 0 {
		t.Fatalf("exit %d: %s", res.ExitCode, res.Output)
	}
	if strings.Contains(res.Output, "bot-credential-must-not-leak") || strings.Contains(res.Output, "DEPLOYBOT_GITHUB_PRIVATE_KEY") {
		t.Fatalf("the bot's environment leaked into the command:\n%s", res.Output)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(res.Output, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "branch=") {
			vars[k] = v
		}
	}
	var names []string
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	// PWD is set by the shell itself.
	if got := strings.Join(names, ","); got != "DATABASE_URL,DEPLOYBOT_BRANCH,HOME,LANG,PATH,PWD" {
		t.Errorf("command saw variables %s", got)
	}
	if vars["PATH"] != DefaultPath || vars["LANG"] != "C.UTF-8" || vars["DATABASE_URL"] != "postgres://x" {
		t.Errorf("vars = %v", vars)
	}
	if !strings.Contains(res.Output, "branch="+branch+"\n") || !strings.Contains(res.Output, "home-ok") {
		t.Errorf("output:\n%s", res.Output)
	}
	for _, f := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("the branch name was executed: %s exists", f)
		}
	}
	// The scratch HOME is gone afterwards.
	home := vars["HOME"]
	if home == "" || home == os.Getenv("HOME") {
		t.Fatalf("HOME = %q, want a scratch directory", home)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch HOME %s not removed: %v", home, err)
	}
}

func TestScratchHomeRemovedEvenIfReadOnly(t *testing.T) {
	res := run(t, Command{Script: `mkdir -p "$HOME/mod/cache" && touch "$HOME/mod/cache/f" && chmod -R a-w "$HOME/mod" && echo "$HOME"`})
	home := strings.TrimSpace(res.Output)
	if res.ExitCode != 0 || home == "" {
		t.Fatalf("%+v", res)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only scratch HOME %s not removed: %v", home, err)
	}
}

func TestCallerMayOverrideDefaults(t *testing.T) {
	home := t.TempDir()
	res := run(t, Command{Script: `echo "$HOME $PATH $LANG"`, Env: map[string]string{"HOME": home, "PATH": "/bin", "LANG": "en_US.UTF-8"}})
	if got := strings.TrimSpace(res.Output); got != home+" /bin en_US.UTF-8" {
		t.Errorf("got %q", got)
	}
	if _, err := os.Stat(home); err != nil {
		t.Errorf("a HOME given by the caller must not be removed: %v", err)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	res := run(t, Command{
		Dir:     dir,
		Script:  `sleep 1000 & echo $! > "$PIDFILE"; wait`,
		Env:     map[string]string{"PIDFILE": pidfile},
		Timeout: time.Second,
	})
	if !res.TimedOut || res.Cancelled || res.ExitCode != 128+int(syscall.SIGTERM) {
		t.Fatalf("%+v, want timed out by SIGTERM", res)
	}
	if res.Duration > 10*time.Second {
		t.Errorf("Duration = %v", res.Duration)
	}
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Err() = %v", err)
	}
	assertGone(t, readPID(t, pidfile))
}

func TestCancelMidRunKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	ready := mkfifo(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		res, err := Run(ctx, Command{
			Dir:    dir,
			Script: `echo started; sleep 1000 & echo $! > "$READY"; wait`,
			Env:    map[string]string{"READY": ready},
		})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- res
	}()
	pid := awaitPID(t, ready, done)
	cancel() // the run was superseded
	res := <-done
	if !res.Cancelled || res.TimedOut || res.ExitCode == 0 {
		t.Fatalf("%+v, want cancelled", res)
	}
	if res.Output != "started\n" {
		t.Errorf("output before cancel = %q", res.Output)
	}
	assertGone(t, pid)
}

func TestTermIgnoredEscalatesToKill(t *testing.T) {
	dir := t.TempDir()
	ready := mkfifo(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		res, err := Run(ctx, Command{
			Dir:       dir,
			Script:    `trap '' TERM; sleep 1000 & echo $! > "$READY"; while :; do wait; done`,
			Env:       map[string]string{"READY": ready},
			KillGrace: 200 * time.Millisecond,
		})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- res
	}()
	pid := awaitPID(t, ready, done)
	cancel()
	res := <-done
	if !res.Cancelled || res.ExitCode != 128+int(syscall.SIGKILL) {
		t.Fatalf("%+v, want cancelled and SIGKILLed", res)
	}
	if res.Duration < 200*time.Millisecond {
		t.Errorf("Duration %v: SIGKILL came before the grace period", res.Duration)
	}
	assertGone(t, pid)
}

func TestLeftoverBackgroundProcessIsStopped(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	res := run(t, Command{
		Dir:    dir,
		Script: `sleep 1000 & echo $! > "$PIDFILE"; echo done`,
		Env:    map[string]string{"PIDFILE": pidfile},
	})
	if res.ExitCode != 0 || res.TimedOut || res.Output != "done\n" {
		t.Fatalf("%+v", res)
	}
	if res.Duration > 10*time.Second {
		t.Errorf("Run waited for the background sleep: %v", res.Duration)
	}
	assertGone(t, readPID(t, pidfile))
}

func TestContextDeadlineCountsAsTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, Command{Dir: t.TempDir(), Script: "sleep 1000"})
	if err != nil || !res.TimedOut || res.Cancelled {
		t.Fatalf("%+v, %v", res, err)
	}
	// Already over: nothing is started.
	res, err = Run(ctx, Command{Dir: t.TempDir(), Script: "echo should-not-run"})
	if err != nil || !res.TimedOut || res.Output != "" || res.ExitCode != -1 {
		t.Fatalf("after deadline: %+v, %v", res, err)
	}
}

func TestOutputCapKeepsHeadAndTail(t *testing.T) {
	res := run(t, Command{
		Script:     `echo START; i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done; echo END`,
		OutputHead: 1024,
		OutputTail: 1024,
	})
	var full strings.Builder
	full.WriteString("START\n")
	for i := range 20000 {
		fmt.Fprintf(&full, "line %d\n", i)
	}
	full.WriteString("END\n")
	f := full.String()
	want := f[:1024] + "\n" + fmt.Sprintf("[… %d bytes of output omitted …]\n", len(f)-2048) + f[len(f)-1024:]
	if !res.Truncated || res.Output != want {
		t.Fatalf("Truncated=%v, output (%d bytes) starts %q ends %q", res.Truncated, len(res.Output), res.Output[:40], res.Output[len(res.Output)-40:])
	}
}

func TestSecretsMasked(t *testing.T) {
	token := "ghs_0123456789abcdefTOKEN"
	dbURL := "postgres://app:pa55word@ep-1.neon.tech/db"
	res := run(t, Command{
		// The second secret is written in two pieces with a pause, so it
		// reaches the bot in two reads.
		Script:  `echo "token: $TOKEN"; echo "url: $DATABASE_URL"; printf 'split: pa55'; sleep 0.2; printf 'word done\n'; echo "$TOKEN" >&2`,
		Env:     map[string]string{"TOKEN": token, "DATABASE_URL": dbURL},
		Secrets: []string{token, dbURL, "pa55word"},
	})
	want := "token: ***\nurl: ***\nsplit: *** done\n***\n"
	if res.Output != want {
		t.Errorf("Output = %q, want %q", res.Output, want)
	}
}

func TestSecretMaskedAcrossOutputCut(t *testing.T) {
	secret := "SUPERSECRET-VALUE-42"
	// The secret straddles the head cut (at 16 bytes) and the tail cut.
	res := run(t, Command{
		Script:     `printf '0123456789%s' "$S"; i=0; while [ $i -lt 200 ]; do echo filler; i=$((i+1)); done; printf '%sabcdefghij' "$S"`,
		Env:        map[string]string{"S": secret},
		Secrets:    []string{secret},
		OutputHead: 16,
		OutputTail: 16,
	})
	if !res.Truncated {
		t.Fatalf("not truncated: %q", res.Output)
	}
	for k := 3; k <= len(secret); k++ {
		if strings.Contains(res.Output, secret[:k]) || strings.Contains(res.Output, secret[len(secret)-k:]) {
			t.Fatalf("part of the secret is visible: %q", res.Output)
		}
	}
	if !strings.HasPrefix(res.Output, "0123456789***") || !strings.HasSuffix(res.Output, "***abcdefghij") {
		t.Errorf("Output = %q", res.Output)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Command
		want string
	}{
		{"empty script", Command{Dir: dir, Script: " "}, "empty command"},
		{"no dir", Command{Script: "true"}, "no working directory"},
		{"missing dir", Command{Dir: filepath.Join(dir, "nope"), Script: "true"}, "nope"},
		{"file as dir", Command{Dir: file, Script: "true"}, "not a directory"},
		{"bad name", Command{Dir: dir, Script: "true", Env: map[string]string{"A=B": "x"}}, `"A=B"`},
		{"NUL in value", Command{Dir: dir, Script: "true", Env: map[string]string{"TOKEN": "sec\x00ret"}}, "TOKEN contains a NUL"},
		{"no shell", Command{Dir: dir, Script: "true", Shell: "/nonexistent/sh"}, "/nonexistent/sh"},
	} {
		res, err := Run(context.Background(), tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) || res.ExitCode != -1 {
			t.Errorf("%s: %+v, %v; want an error containing %q", tc.name, res, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "sec") && tc.name == "NUL in value" {
			t.Errorf("%s: error shows the value: %v", tc.name, err)
		}
	}
}

// readPID reads the PID a script wrote to a file.
func readPID(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the script did not record its child's PID: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad PID %q", data)
	}
	return pid
}

func mkfifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// awaitPID blocks until the script writes a PID into the FIFO: the script
// is then known to be running, without sleeping. If Run ends first, the
// test fails instead of hanging.
func awaitPID(t *testing.T, fifo string, done chan Result) int {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		f, err := os.Open(fifo) // blocks until the script opens it for writing
		if err != nil {
			got <- ""
			return
		}
		defer f.Close()
		line, _ := bufio.NewReader(f).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || pid <= 1 {
			t.Fatalf("bad PID %q from the script", line)
		}
		return pid
	case res := <-done:
		// Unblock the reader goroutine, then fail.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatalf("Run ended before the script was ready: %+v", res)
		return 0
	}
}

// assertGone checks that pid no longer exists at all: not running, and not
// a zombie either (Run reaps its group's zombies when they are its
// children, which they are here because the test binary is a subreaper).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return
	}
	state := "unknown"
	if data, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); rerr == nil {
		state = string(data)
	}
	syscall.Kill(pid, syscall.SIGKILL) // do not leave it behind
	t.Fatalf("process %d still exists after Run returned (kill 0: %v; stat: %s)", pid, err, state)
}

// Command.Output gets the whole output, masked, while Result.Output keeps
// only a head and a tail: the run page shows all of a long build's log.
func TestOutputStreamsEverythingMasked(t *testing.T) {
	var streamed strings.Builder
	res := run(t, Command{
		Script:     `echo "token=$TOKEN"; i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done`,
		Env:        map[string]string{"TOKEN": "s3cr3t-token-value"},
		Secrets:    []string{"s3cr3t-token-value"},
		OutputHead: 1 << 10, OutputTail: 1 << 10,
		Output: &streamed,
	})
	got := streamed.String()
	if !strings.HasPrefix(got, "token=***\nline 0\n") || !strings.HasSuffix(got, "line 1999\n") || !strings.Contains(got, "\nline 1000\n") {
		t.Fatalf("streamed output is not the whole masked output: %d bytes, starting %q", len(got), got[:min(len(got), 40)])
	}
	if strings.Contains(got, "s3cr3t") {
		t.Fatal("the streamed output shows the secret")
	}
	if !res.Truncated || strings.Contains(res.Output, "\nline 1000\n") {
		t.Fatalf("Result.Output should still keep only a head and a tail (truncated %v)", res.Truncated)
	}
}
