package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Isolation is how a Runner separates commands from the bot.
type Isolation string

const (
	// IsolationBwrap runs every command in a bubblewrap sandbox: its own
	// user, PID, mount, IPC, UTS and cgroup namespaces, the network shared.
	IsolationBwrap Isolation = "bwrap"
	// IsolationNone runs commands as the bot's own user, with the bot's
	// files in reach; untrusted (fork) code is then refused.
	IsolationNone Isolation = "none"
)

// ErrUntrustedWithoutSandbox is returned for an untrusted command on a
// Runner without a sandbox.
var ErrUntrustedWithoutSandbox = errors.New("runner: code from a fork runs only in a sandbox, and this bot runs commands without one (runner.isolation: none)")

// sandboxUID is the unprivileged user a command runs as inside the
// sandbox; sandboxHome is its HOME, a fresh tmpfs.
const (
	sandboxUID  = 1000
	sandboxUser = "deploybot"
	sandboxHome = "/home/deploybot"
)

// systemDirs are the host's toolchain, visible read-only. On merged-/usr
// systems /bin, /lib… are symlinks into /usr and are recreated as such.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"}

// etcAllowed are the entries of /etc that programs need to resolve names,
// verify TLS, find shared libraries and run Debian's tool wrappers. /etc is
// not visible as a whole: it may hold the bot's own config
// (/etc/deploybot in the Docker image), SSH host keys or /etc/shadow.
var etcAllowed = []string{
	"alternatives", "ca-certificates", "ca-certificates.conf", "debian_version",
	"fonts", "gai.conf", "gitconfig", "host.conf", "hosts", "inputrc",
	"java-17-openjdk", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
	"magic", "magic.mime", "maven", "mime.types", "networks", "npmrc",
	"nsswitch.conf", "os-release", "perl", "pip.conf", "postgresql-common",
	"profile", "protocols", "python3", "python3.11", "resolv.conf", "services",
	"shells", "ssl", "terminfo", "timezone", "wgetrc", "xml",
}

// Options configure New.
type Options struct {
	// Isolation is IsolationBwrap (the default) or IsolationNone.
	Isolation Isolation
	// Bwrap is bubblewrap's executable (default: "bwrap" on PATH).
	Bwrap string
	// Hidden are the bot's own paths — its config file, the App's key
	// file, its data and work directories — that no command may see. The
	// sandbox shows only the system directories above, so these are
	// normally out of sight already; any that lies inside one of them is
	// covered over as well.
	Hidden []string
	// Shared are host directories every command sees read-write at their
	// own path. Nothing in the bot needs one; tests use it to hand a
	// command a file, or to watch what it writes.
	Shared []string
}

// Runner runs the repository's commands, in a sandbox unless configured
// otherwise. It is safe for concurrent use.
type Runner struct {
	isolation Isolation
	bwrap     string
	hidden    []string
	shared    []string
}

// New returns a Runner. With IsolationBwrap it first runs one command in
// the sandbox, so a host where bubblewrap is missing or cannot create
// namespaces (a container without user namespaces, say) is found at
// start-up, with the reason, not at the first pull request.
func New(ctx context.Context, o Options) (*Runner, error) {
	r := &Runner{isolation: o.Isolation}
	if r.isolation == "" {
		r.isolation = IsolationBwrap
	}
	switch r.isolation {
	case IsolationNone:
		return r, nil
	case IsolationBwrap:
	default:
		return nil, fmt.Errorf("runner: isolation %q: want %q or %q", o.Isolation, IsolationBwrap, IsolationNone)
	}
	for _, h := range o.Hidden {
		if h == "" {
			continue
		}
		abs, err := filepath.Abs(h)
		if err != nil {
			return nil, fmt.Errorf("runner: hidden path %s: %w", h, err)
		}
		r.hidden = append(r.hidden, abs)
	}
	for _, d := range o.Shared {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("runner: shared directory %s: %w", d, err)
		}
		r.shared = append(r.shared, abs)
	}
	bwrap := o.Bwrap
	if bwrap == "" {
		bwrap = "bwrap"
	}
	p, err := exec.LookPath(bwrap)
	if err != nil {
		return nil, fmt.Errorf("runner: bubblewrap (%s) not found: %w", bwrap, err)
	}
	r.bwrap = p
	if err := r.probe(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Isolated reports whether commands run in a sandbox.
func (r *Runner) Isolated() bool { return r.isolation == IsolationBwrap }

// Run runs c — in the sandbox when the Runner has one — and waits for it
// and everything it started to end; see the package function Run for the
// rest.
func (r *Runner) Run(ctx context.Context, c Command) (Result, error) {
	keepDescriptorsHome()
	if !r.Isolated() {
		if c.Untrusted {
			return Result{ExitCode: -1}, ErrUntrustedWithoutSandbox
		}
		return execute(ctx, c, nil)
	}
	return execute(ctx, c, r.wrap)
}

// keepDescriptorsHome marks every open descriptor above stderr
// close-on-exec. Go opens its own that way, but descriptors the bot
// inherited from whatever started it (a supervisor's pipe, a socket, a
// file) are not, and every command would inherit them in turn, sandbox or
// not. Cheap enough to do before each command, which also covers any that
// appeared since.
func keepDescriptorsHome() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// probe runs `true` in a sandbox around a scratch workspace.
func (r *Runner) probe(ctx context.Context) error {
	ws, err := os.MkdirTemp("", "deploybot-probe-")
	if err != nil {
		return fmt.Errorf("runner: probe: %w", err)
	}
	defer os.RemoveAll(ws)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := r.Run(ctx, Command{Script: "exit 0", Dir: ws, Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("runner: cannot start the command sandbox: %w", err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("runner: the command sandbox (%s) does not work on this host: %s", r.bwrap, firstLine(res.Output, res.Err()))
	}
	return nil
}

func firstLine(out string, err error) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return err.Error()
	}
	line, _, _ := strings.Cut(out, "\n")
	return line
}

// wrap makes cmd start bubblewrap, which runs the command in the sandbox.
// The command's environment stays in cmd.Env (bwrap passes it on): on
// bwrap's command line it would be readable by every process of the host.
func (r *Runner) wrap(cmd *exec.Cmd, workspace string) (func(), error) {
	workspace, err := filepath.Abs(workspace)
	if err != nil {
		return nil, fmt.Errorf("runner: workspace: %w", err)
	}
	dir, err := filepath.Abs(cmd.Dir)
	if err != nil {
		return nil, fmt.Errorf("runner: working directory: %w", err)
	}
	if !within(dir, workspace) {
		return nil, fmt.Errorf("runner: working directory %s is outside the workspace %s", dir, workspace)
	}
	for _, h := range r.hidden {
		if within(workspace, h) || within(h, workspace) {
			return nil, fmt.Errorf("runner: workspace %s overlaps the bot's own %s", workspace, h)
		}
	}
	// /etc/passwd and /etc/group name the sandbox's user, so tools that
	// look themselves up (git, ssh, npm) work; they come in through pipes.
	passwd, group, err := identityFiles()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--unshare-all", "--share-net", "--die-with-parent",
		"--uid", fmt.Sprint(sandboxUID), "--gid", fmt.Sprint(sandboxUID),
		"--hostname", "deploybot",
	}
	var bound []string
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err == nil {
				args = append(args, "--symlink", target, d)
			}
		case fi.IsDir():
			args = append(args, "--ro-bind", d, d)
			bound = append(bound, d)
		}
	}
	for _, e := range etcAllowed {
		p := "/etc/" + e
		args = append(args, "--ro-bind-try", p, p)
		bound = append(bound, p)
	}
	args = append(args,
		"--ro-bind-data", "3", "/etc/passwd",
		"--ro-bind-data", "4", "/etc/group",
		"--proc", "/proc", "--dev", "/dev",
		"--tmpfs", "/tmp", "--tmpfs", sandboxHome,
		"--bind", workspace, workspace,
	)
	for _, d := range r.shared {
		args = append(args, "--bind", d, d)
	}
	// Belt and braces: cover any of the bot's paths that a bound system
	// directory would show.
	for _, h := range r.hidden {
		for _, b := range bound {
			if !within(h, b) {
				continue
			}
			if fi, err := os.Stat(h); err == nil && fi.IsDir() {
				args = append(args, "--tmpfs", h)
			} else if err == nil {
				args = append(args, "--ro-bind", "/dev/null", h)
			}
		}
	}
	args = append(args, "--chdir", dir, "--")
	cmd.Args = append(append([]string{r.bwrap}, args...), cmd.Args...)
	cmd.Path = r.bwrap
	cmd.ExtraFiles = []*os.File{passwd, group}
	return func() { passwd.Close(); group.Close() }, nil
}

// identityFiles returns pipes from which bwrap reads the sandbox's
// /etc/passwd and /etc/group.
func identityFiles() (passwd, group *os.File, err error) {
	pipe := func(content string) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		// A few dozen bytes: the pipe's buffer holds them before bwrap reads.
		_, err = w.WriteString(content)
		w.Close()
		if err != nil {
			r.Close()
			return nil, err
		}
		return r, nil
	}
	passwd, err = pipe(fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d:deploybot command:%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", sandboxUser, sandboxUID, sandboxUID, sandboxHome))
	if err != nil {
		return nil, nil, fmt.Errorf("runner: sandbox /etc/passwd: %w", err)
	}
	group, err = pipe(fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", sandboxUser, sandboxUID))
	if err != nil {
		passwd.Close()
		return nil, nil, fmt.Errorf("runner: sandbox /etc/group: %w", err)
	}
	return passwd, group, nil
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}
