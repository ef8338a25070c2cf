// Package runner runs the repository's pipeline commands (the `run:` lines
// of .github/deploybot.yml, always read from the base branch) the way a CI
// step runs them: `sh -c <command>` in the checked-out workspace.
//
// The bot's own process holds the GitHub App key and the cloud API tokens,
// so a command must not inherit anything from it. Run builds the
// environment only from what the caller passes (PATH, a scratch HOME,
// LANG=C.UTF-8 and the caller's variables such as DATABASE_URL and the
// DEPLOYBOT_* context), never from os.Environ.
//
// User-controlled strings (branch names, PR titles, comments) must never be
// spliced into Command.Script: the script is trusted text from the base
// branch and is passed to the shell as one argument. Values a script needs
// go in Command.Env, and the script refers to them as "$DEPLOYBOT_BRANCH"
// (quoted), so the shell treats them as data, never as code (DESIGN.md
// invariant 6).
//
// A clean environment is not isolation: a command running as the bot's user
// can still read /proc/$PPID/environ, the App's key file, the config and the
// bot's data directory, and signal the bot. So the bot runs commands
// through a Runner, which puts each one in a bubblewrap sandbox (see
// sandbox.go) where the bot does not exist. Run, the package function, runs
// a command without a sandbox; the pipelines never call it directly.
//
// A command runs in its own process group. When it times out, or the run is
// cancelled (a newer push superseded it), the whole group gets SIGTERM and,
// after a grace period, SIGKILL, so `sleep 1000 &` in a script does not
// outlive the run; processes left behind by a command that exited are
// stopped the same way. Processes that leave the group on purpose (setsid)
// are out of the group's reach: in the sandbox they die with its PID
// namespace when the command ends; without one they survive.
//
// Output (stdout and stderr interleaved, as a person would see them in a
// terminal) is captured with bounded memory: the first and the last bytes
// are kept, the middle is counted. Secret values the caller names are
// replaced by "***" as the output streams in, before anything is kept, so
// no cut and no write boundary can leave part of a secret visible
// (invariant 7).
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Defaults for the zero values in Command.
const (
	DefaultShell      = "/bin/sh"
	DefaultPath       = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	DefaultKillGrace  = 10 * time.Second
	DefaultOutputHead = 16 << 10
	DefaultOutputTail = 48 << 10
)

// pipeDrain bounds how long Run waits for the output pipe to close after
// the process group is gone; only processes that escaped the group (setsid)
// can hold it open that long.
const pipeDrain = 2 * time.Second

// killWait bounds the wait for a SIGKILLed group to disappear.
const killWait = 5 * time.Second

// Command is one trusted command and what it runs with.
type Command struct {
	// Script is given to the shell as `sh -c Script`. It must come from the
	// trusted pipeline definition; never build it from user input (pass
	// such values in Env instead).
	Script string
	// Dir is the working directory; it must exist.
	Dir string
	// Env holds the command's variables (DATABASE_URL, DEPLOYBOT_PR, ...).
	// They are added to PATH=DefaultPath, LANG=C.UTF-8 and HOME=<a fresh
	// empty directory removed afterwards>, and may override them. Nothing
	// else reaches the command.
	Env map[string]string
	// Secrets are values to mask in the output, e.g. the database password
	// and the whole DATABASE_URL. Empty strings are ignored.
	Secrets []string
	// Timeout limits the command (0: only ctx limits it).
	Timeout time.Duration
	// KillGrace is how long the group has between SIGTERM and SIGKILL
	// (default 10s).
	KillGrace time.Duration
	// OutputHead and OutputTail are how many bytes of the beginning and the
	// end of the output to keep (defaults 16 KiB and 48 KiB).
	OutputHead, OutputTail int
	// Shell is the shell to run Script with (default /bin/sh); a name
	// without '/' is looked up in the bot's PATH.
	Shell string
	// Workspace is the run's folder, the only place a sandboxed command
	// can write (and see) outside its own HOME and /tmp; Dir must be in
	// it. Empty means Dir.
	Workspace string
	// Untrusted marks code nobody with write access wrote (a fork's): a
	// Runner without a sandbox refuses to run it.
	Untrusted bool
	// Output, when set, receives the whole output as it comes, secrets
	// already masked, from one goroutine; Run returns only after its last
	// write. It is how a run's page streams a build's log live and keeps
	// all of it, where Result.Output keeps a head and a tail.
	Output io.Writer
}

// Result is what happened.
type Result struct {
	// ExitCode is the command's exit status; 128+N when it was ended by
	// signal N (as shells report it), -1 when it never started.
	ExitCode int
	Duration time.Duration
	// Output is stdout and stderr interleaved with secrets masked: the
	// first OutputHead and last OutputTail bytes of the masked output, and
	// a line saying how much was left out between them when Truncated.
	Output    string
	Truncated bool
	// TimedOut: Command.Timeout or ctx's deadline ended the command.
	TimedOut bool
	// Cancelled: ctx was cancelled (e.g. the run was superseded).
	Cancelled bool
}

// Err describes a command that did not succeed, or returns nil.
func (r Result) Err() error {
	switch {
	case r.TimedOut:
		return fmt.Errorf("runner: command timed out after %v", r.Duration.Round(time.Millisecond))
	case r.Cancelled:
		return errors.New("runner: command cancelled")
	case r.ExitCode != 0:
		return fmt.Errorf("runner: command exited with status %d", r.ExitCode)
	}
	return nil
}

// Run runs c and waits for it and everything it started to end. A command
// that ran and failed, timed out or was cancelled is described by Result
// (see Result.Err); the error is for a command that could not be started
// (missing directory, invalid variable name, no shell).
//
// Run does not isolate the command from the bot: use a Runner.
func Run(ctx context.Context, c Command) (Result, error) {
	return execute(ctx, c, nil)
}

// wrapper turns a prepared command into the process to start: the
// sandbox's, or nil for the command itself.
type wrapper func(c *exec.Cmd, workspace string) (cleanup func(), err error)

func execute(ctx context.Context, c Command, wrap wrapper) (Result, error) {
	if strings.TrimSpace(c.Script) == "" {
		return Result{ExitCode: -1}, errors.New("runner: empty command")
	}
	if c.Dir == "" {
		return Result{ExitCode: -1}, errors.New("runner: no working directory given")
	}
	if fi, err := os.Stat(c.Dir); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("runner: working directory: %w", err)
	} else if !fi.IsDir() {
		return Result{ExitCode: -1}, fmt.Errorf("runner: working directory %s is not a directory", c.Dir)
	}
	for k, v := range c.Env {
		if !validEnvName(k) {
			return Result{ExitCode: -1}, fmt.Errorf("runner: environment variable name %q is not valid", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			// Never echo the value: it may be a secret.
			return Result{ExitCode: -1}, fmt.Errorf("runner: environment variable %s contains a NUL byte", k)
		}
	}
	shell := c.Shell
	if shell == "" {
		shell = DefaultShell
	}
	if !filepath.IsAbs(shell) {
		// Found with the bot's PATH, but run with the command's environment.
		p, err := exec.LookPath(shell)
		if err != nil {
			return Result{ExitCode: -1}, fmt.Errorf("runner: shell: %w", err)
		}
		shell = p
	}
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1, TimedOut: errors.Is(err, context.DeadlineExceeded), Cancelled: errors.Is(err, context.Canceled)}, nil
	}

	env := map[string]string{"PATH": DefaultPath, "LANG": "C.UTF-8"}
	_, ownHome := c.Env["HOME"]
	switch {
	case ownHome:
	case wrap != nil:
		env["HOME"] = sandboxHome // a fresh tmpfs inside the sandbox
	default:
		home, err := os.MkdirTemp("", "deploybot-home-")
		if err != nil {
			return Result{ExitCode: -1}, fmt.Errorf("runner: scratch HOME: %w", err)
		}
		defer removeAll(home)
		env["HOME"] = home
	}
	for k, v := range c.Env {
		env[k] = v
	}

	head, tail := c.OutputHead, c.OutputTail
	if head <= 0 {
		head = DefaultOutputHead
	}
	if tail <= 0 {
		tail = DefaultOutputTail
	}
	grace := c.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}

	// One pipe for stdout and stderr keeps their order. The child gets the
	// write end directly (an *os.File), so no goroutine in os/exec copies
	// it and Wait does not block on grandchildren holding it.
	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("runner: output pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:        shell,
		Args:        []string{shell, "-c", c.Script},
		Dir:         c.Dir,
		Env:         sortedEnv(env), // never nil: nil would mean os.Environ()
		Stdout:      pw,
		Stderr:      pw,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if wrap != nil {
		ws := c.Workspace
		if ws == "" {
			ws = c.Dir
		}
		cleanup, err := wrap(cmd, ws)
		if err != nil {
			pr.Close()
			pw.Close()
			return Result{ExitCode: -1}, err
		}
		defer cleanup()
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return Result{ExitCode: -1}, fmt.Errorf("runner: start %s in %s: %w", shell, c.Dir, err)
	}
	pw.Close()
	pgid := cmd.Process.Pid

	out := newCapped(head, tail)
	emit := out.Write
	if c.Output != nil {
		emit = func(p []byte) {
			out.Write(p)
			_, _ = c.Output.Write(p)
		}
	}
	m := newMasker(c.Secrets, emit)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				m.Write(buf[:n])
			}
			if err != nil {
				m.Flush()
				return
			}
		}
	}()
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()

	var timeout <-chan time.Time
	if c.Timeout > 0 {
		t := time.NewTimer(c.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var res Result
	var waitErr error
	exited := false
	select {
	case waitErr = <-waitDone:
		exited = true
	case <-ctx.Done():
		res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		res.Cancelled = !res.TimedOut
	case <-timeout:
		res.TimedOut = true
	}
	// Whether the command ended or was stopped, nothing it started may
	// outlive it.
	if !exited || groupAlive(pgid) {
		stopGroup(pgid, grace, waitDone, &waitErr, &exited)
	}
	if !exited {
		waitErr = <-waitDone
	}

	select {
	case <-readDone:
	case <-time.After(pipeDrain):
		// Something outside the group still holds the pipe; stop reading.
		_ = pr.SetReadDeadline(time.Now())
		<-readDone
	}
	pr.Close()

	res.Duration = time.Since(start)
	res.ExitCode = exitCode(cmd, waitErr)
	res.Truncated = out.omitted() > 0
	// The stream was masked before it was cut; masking the assembled text
	// once more costs little and covers the marker joins.
	res.Output = maskString(out.String(), c.Secrets)
	return res, nil
}

// stopGroup sends SIGTERM to the group, waits up to grace for it to be
// gone, then SIGKILLs what is left. It records the leader's exit when it
// is observed meanwhile.
func stopGroup(pgid int, grace time.Duration, waitDone <-chan error, waitErr *error, exited *bool) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	_ = syscall.Kill(-pgid, syscall.SIGCONT) // a stopped process cannot act on SIGTERM
	if waitGroupGone(pgid, grace, waitDone, waitErr, exited) {
		return
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	waitGroupGone(pgid, killWait, waitDone, waitErr, exited)
}

// waitGroupGone polls until no live process is left in the group, or d
// passes. There is no notification for processes that are not our
// children, so this polls, starting at 2ms and backing off to 50ms.
func waitGroupGone(pgid int, d time.Duration, waitDone <-chan error, waitErr *error, exited *bool) bool {
	deadline := time.Now().Add(d)
	interval := 2 * time.Millisecond
	for {
		if !*exited {
			select {
			case *waitErr = <-waitDone:
				*exited = true
			default:
			}
		}
		if *exited && !groupAlive(pgid) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		t := time.NewTimer(min(interval, time.Until(deadline)))
		select {
		case *waitErr = <-waitDone:
			*exited = true
			t.Stop()
		case <-t.C:
		}
		interval = min(interval*2, 50*time.Millisecond)
	}
}

func exitCode(cmd *exec.Cmd, waitErr error) int {
	if cmd.ProcessState == nil {
		return -1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

func validEnvName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func sortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// removeAll removes a tree even when a command made parts of it read-only
// (Go's module cache does), by restoring write permission on directories.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
