package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sandboxed returns a Runner with the sandbox, hiding hidden; it fails the
// test where bubblewrap is missing, since CI installs it.
func sandboxed(t *testing.T, hidden ...string) *Runner {
	t.Helper()
	r, err := New(context.Background(), Options{Hidden: hidden})
	if err != nil {
		t.Fatalf("the sandbox is not available (CI installs bubblewrap): %v", err)
	}
	return r
}

func runIn(t *testing.T, r *Runner, c Command) Result {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	res, err := r.Run(context.Background(), c)
	if err != nil {
		t.Fatalf("Run(%q): %v", c.Script, err)
	}
	return res
}

// TestSandboxHidesTheBot tries what a hostile build would: the parent's
// environment, the bot's key, config and data directory, and the other
// processes. None of it is there.
func TestSandboxHidesTheBot(t *testing.T) {
	const canary = "canary-3f1c2a9e"
	t.Setenv("DEPLOYBOT_WEBHOOK_SECRET", canary)
	bot := t.TempDir()
	for name, content := range map[string]string{
		"config.yml":          "webhook_secret: " + canary + "\n",
		"app.pem":             "-----BEGIN RSA PRIVATE KEY-----\n" + canary + "\n",
		"postgres/PG_VERSION": canary + "\n",
	} {
		p := filepath.Join(bot, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := sandboxed(t, filepath.Join(bot, "config.yml"), filepath.Join(bot, "app.pem"), filepath.Join(bot, "postgres"))
	res := runIn(t, r, Command{
		Script: `
tr '\0' '\n' < /proc/$PPID/environ
tr '\0' '\n' < /proc/1/environ
cat "$BOT/config.yml" "$BOT/app.pem" "$BOT/postgres/PG_VERSION"
ls -a "$BOT"
cat /etc/shadow /etc/deploybot/config.yml
for p in /proc/[0-9]*; do echo "process $(tr '\0' ' ' < $p/cmdline)"; done
echo "uid $(id -u)"
exit 0`,
		Env: map[string]string{"BOT": bot},
	})
	if strings.Contains(res.Output, canary) {
		t.Errorf("a command read the bot's secrets:\n%s", res.Output)
	}
	self := filepath.Base(os.Args[0])
	processes := 0
	for _, line := range strings.Split(res.Output, "\n") {
		if cmdline, ok := strings.CutPrefix(line, "process "); ok {
			processes++
			if strings.Contains(cmdline, self) {
				t.Errorf("the command sees the bot's process: %s", cmdline)
			}
		}
	}
	if processes == 0 || processes > 6 {
		t.Errorf("the command sees %d processes, want only the sandbox's own few:\n%s", processes, res.Output)
	}
	if !strings.Contains(res.Output, "uid 1000\n") {
		t.Errorf("the command does not run as the sandbox's unprivileged user:\n%s", res.Output)
	}

	// The same command without the sandbox finds them all: the test can fail.
	plain, err := Run(context.Background(), Command{Dir: t.TempDir(), Script: `cat "$BOT/app.pem"; tr '\0' '\n' < /proc/$PPID/environ`, Env: map[string]string{"BOT": bot}})
	if err != nil || !strings.Contains(plain.Output, canary) {
		t.Fatalf("without a sandbox the secrets should be in reach: %v %q", err, plain.Output)
	}
}

// TestSandboxFilesystem: the workspace is writable and shared with the bot,
// the system is read-only, HOME and /tmp are fresh and empty.
func TestSandboxFilesystem(t *testing.T) {
	r := sandboxed(t)
	ws := t.TempDir()
	sub := filepath.Join(ws, "web")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(os.TempDir(), "deploybot-host-tmp-marker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(os.TempDir(), "deploybot-host-tmp-marker"))
	res := runIn(t, r, Command{
		Dir: sub, Workspace: ws,
		Script: `
set -u
pwd
echo built > ../dist.txt && echo "workspace writable"
touch /usr/deploybot-test 2>/dev/null || echo "usr read-only"
echo "home $HOME: [$(ls -A "$HOME")] $(touch "$HOME/x" && echo writable)"
echo "tmp: [$(ls -A /tmp)]"
sh -c 'echo "shell ok"'
`,
	})
	if strings.Contains(res.Output, "deploybot-host-tmp-marker") {
		t.Errorf("the host's /tmp is visible:\n%s", res.Output)
	}
	for _, want := range []string{sub + "\n", "workspace writable", "usr read-only", "home /home/deploybot: [] writable", "tmp: [", "shell ok"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Output)
		}
	}
	if b, err := os.ReadFile(filepath.Join(ws, "dist.txt")); err != nil || string(b) != "built\n" {
		t.Errorf("the build's output is not in the workspace: %q, %v", b, err)
	}
}

// TestSandboxNetwork: builds install packages, so the network stays.
func TestSandboxNetwork(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash for /dev/tcp")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hello from the host\n"))
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	res := runIn(t, sandboxed(t), Command{Shell: "bash", Script: `exec 3<>/dev/tcp/127.0.0.1/` + port + `; cat <&3`})
	if res.Output != "hello from the host\n" {
		t.Errorf("output %q, exit %d", res.Output, res.ExitCode)
	}
}

// TestSandboxLeavesNothingRunning: a process that leaves the group on
// purpose (setsid) dies with the sandbox when the command ends, when it
// times out and when it is cancelled.
func TestSandboxLeavesNothingRunning(t *testing.T) {
	r := sandboxed(t)
	for _, tc := range []struct {
		name    string
		script  string
		timeout time.Duration
	}{
		{"command ended", escapee + `; echo started`, 0},
		{"timed out", escapee + `; echo started; sleep 1000`, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := fmt.Sprintf("deploybot-escapee-%d", time.Now().UnixNano())
			res := runIn(t, r, Command{Script: tc.script, Env: map[string]string{"MARK": mark}, Timeout: tc.timeout, KillGrace: 100 * time.Millisecond})
			if !strings.Contains(res.Output, "started") {
				t.Fatalf("%+v", res)
			}
			if pids := hostProcesses(t, mark); len(pids) > 0 {
				t.Errorf("processes %v outlived the command", pids)
			}
		})
	}
	// Without the sandbox, the same escapee survives: the test can fail.
	mark := fmt.Sprintf("deploybot-escapee-%d", time.Now().UnixNano())
	if _, err := Run(context.Background(), Command{Dir: t.TempDir(), Script: escapee, Env: map[string]string{"MARK": mark}}); err != nil {
		t.Fatal(err)
	}
	pids := hostProcesses(t, mark)
	for _, pid := range pids {
		killPID(pid)
	}
	if len(pids) == 0 {
		t.Error("without a sandbox the setsid process should survive; the check above proves nothing")
	}
}

// escapee starts a process in a session of its own and returns once it is
// there: it says so through a FIFO after setsid, so the command cannot end
// while its child is still in the command's process group (where the
// group kill would reach it and prove nothing).
const escapee = `mkfifo up; setsid sh -c 'echo up > up; while :; do sleep 1; done' "$MARK" </dev/null >/dev/null 2>&1 & read x < up`

// hostProcesses lists the live processes whose command line contains mark.
func hostProcesses(t *testing.T, mark string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(mark)) {
			continue
		}
		if state, _, _, ok := procStat(e.Name()); ok && (state == 'Z' || state == 'X') {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestUntrustedCodeNeedsTheSandbox(t *testing.T) {
	r, err := New(context.Background(), Options{Isolation: IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), Command{Dir: t.TempDir(), Script: "true", Untrusted: true})
	if !errors.Is(err, ErrUntrustedWithoutSandbox) {
		t.Errorf("untrusted code without a sandbox: %v", err)
	}
	if res, err := r.Run(context.Background(), Command{Dir: t.TempDir(), Script: "echo trusted"}); err != nil || res.Output != "trusted\n" {
		t.Errorf("trusted code with isolation none: %+v, %v", res, err)
	}
}

// TestNewSaysWhyThereIsNoSandbox: a host without bubblewrap, or where it
// cannot make namespaces, is reported at start-up with bwrap's own reason.
func TestNewSaysWhyThereIsNoSandbox(t *testing.T) {
	_, err := New(context.Background(), Options{Bwrap: "/nonexistent/bwrap"})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing bwrap: %v", err)
	}
	fake := filepath.Join(t.TempDir(), "bwrap")
	script := "#!/bin/sh\necho 'bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), Options{Bwrap: fake})
	if err == nil || !strings.Contains(err.Error(), "No permissions to create new namespace") {
		t.Errorf("bwrap that cannot make namespaces: %v", err)
	}
	if _, err := New(context.Background(), Options{Isolation: "docker"}); err == nil {
		t.Error("an unknown isolation was accepted")
	}
}

func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// TestInheritedDescriptorsStayHome: a descriptor the bot holds without
// close-on-exec (inherited from its supervisor, say) does not reach a
// command: it sees only its standard input, output and error.
func TestInheritedDescriptorsStayHome(t *testing.T) {
	fd, err := syscall.Open(os.Args[0], syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	self, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	res := runIn(t, sandboxed(t), Command{Script: `ls -l /proc/$$/fd/`})
	if strings.Contains(res.Output, self) || strings.Count(res.Output, " -> ") != 3 {
		t.Errorf("the command holds descriptors beyond 0, 1 and 2 (the bot's fd %d is %s):\n%s", fd, self, res.Output)
	}
}
