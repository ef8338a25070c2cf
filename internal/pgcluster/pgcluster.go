// Package pgcluster runs a private PostgreSQL server from the server binaries
// installed on the machine. It is what the bot, the demo and the tests use when
// no database URL is given, so that a first try needs nothing but PostgreSQL's
// packages.
//
// A cluster lives in a data directory. Start initialises it on first use,
// starts a postmaster listening only on 127.0.0.1, and adopts a postmaster
// that is already running on the same directory (left behind by a process
// that was killed), so a restarted bot finds its state where it left it.
package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the role initdb creates; connections from 127.0.0.1 are
// trusted, which is acceptable because the server listens on loopback only
// and is private to one bot or test process.
const Superuser = "deploybot"

// Options configures Start.
type Options struct {
	// DataDir holds the cluster. It is created if missing.
	DataDir string
	// Ephemeral trades durability for speed (fsync off): for tests and demos
	// whose data is thrown away.
	Ephemeral bool
	// Logf receives progress messages. Nil discards them.
	Logf func(format string, args ...any)
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dataDir string
	binDir  string
	port    int
	cmd     *exec.Cmd // nil when an already running postmaster was adopted
	exited  chan struct{}
}

// ErrNoServer is returned when no PostgreSQL server binaries are installed.
var ErrNoServer = errors.New("no PostgreSQL server binaries found (looked for initdb and postgres on PATH and under /usr/lib/postgresql/*/bin); install them (Debian: apt-get install -y postgresql) or configure a database URL")

// FindBinaries returns the directory holding initdb and postgres: PATH first,
// then the newest /usr/lib/postgresql/<version>/bin.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
		// Debian links initdb onto PATH but not always postgres: follow the link.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir = filepath.Dir(real)
			if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoServer
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises (if needed) and starts the cluster in opts.DataDir, or
// adopts the postmaster already serving it.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	binDir, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dataDir: dataDir, binDir: binDir}

	if port, ok := runningPostmaster(dataDir); ok {
		c.port = port
		if err := c.waitReady(ctx, nil); err == nil {
			logf("adopted the PostgreSQL server already running on %s (port %d)", dataDir, port)
			return c, nil
		}
	}

	owner, err := serverUser()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		logf("initialising a private PostgreSQL cluster in %s with %s", dataDir, binDir)
		if err := c.initdb(ctx, owner, opts.Ephemeral); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}

	// Another process may take the port between our probe and the server's
	// bind; postgres then exits at once and we try the next free port.
	var lastErr error
	for range 5 {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		if lastErr = c.start(ctx, owner, opts.Ephemeral); lastErr == nil {
			logf("started a private PostgreSQL server on 127.0.0.1:%d (data in %s)", c.port, dataDir)
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// URL is a connection URL for database on the cluster.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates name unless it exists.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("pgcluster: look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgcluster: create database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast mode: open transactions roll back) and
// waits for it to exit. An adopted server is left running: it belongs to the
// process that started it.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
		_ = c.cmd.Process.Kill()
		<-c.exited
		return ctx.Err()
	}
}

func (c *Cluster) initdb(ctx context.Context, owner *owner, ephemeral bool) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: create %s: %w", c.dataDir, err)
	}
	if err := owner.own(c.dataDir); err != nil {
		return err
	}
	if err := owner.reach(c.dataDir); err != nil {
		return err
	}
	args := []string{"-D", c.dataDir, "-U", Superuser, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if ephemeral {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"), args...)
	cmd.SysProcAttr = owner.procAttr()
	cmd.Env = serverEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: initdb %s: %w\n%s", c.dataDir, err, tail(out))
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, owner *owner, ephemeral bool) error {
	args := []string{
		"-D", c.dataDir,
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		// No Unix socket: the default directory may not exist or be writable.
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
	}
	if ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	logPath := filepath.Join(c.dataDir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgcluster: open %s: %w", logPath, err)
	}
	defer logFile.Close()
	if err := owner.own(logPath); err != nil {
		return err
	}

	// Not CommandContext: the server must outlive the start-up context.
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = serverEnv()
	cmd.SysProcAttr = owner.procAttr()
	// If this process dies without stopping the server (a crash, SIGKILL in
	// a test), the server shuts down instead of lingering as an orphan.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	// Its own process group: a Ctrl-C in the terminal goes to the bot, which
	// stops its jobs before it stops the database they use.
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	if err := c.waitReady(ctx, c.exited); err != nil {
		_ = cmd.Process.Kill()
		<-c.exited
		c.cmd = nil
		logTail, _ := os.ReadFile(logPath)
		return fmt.Errorf("pgcluster: postgres on port %d did not become ready: %w\n%s", c.port, err, tail(logTail))
	}
	return nil
}

// waitReady polls until the server accepts connections, the process exits,
// or ctx ends. Polling is the only readiness signal postgres offers to a
// process that is not its parent shell (pg_isready polls too).
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	delay := 10 * time.Millisecond
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-exited:
			return errors.New("postgres exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// runningPostmaster reads postmaster.pid and reports the port of a live
// postmaster serving dataDir.
func runningPostmaster(dataDir string) (int, bool) {
	f, err := os.Open(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// Line 1 is the PID, line 4 the port (see PostgreSQL's pidfile.h).
	if len(lines) < 4 {
		return 0, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	return port, true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverEnv is the environment of initdb and postgres: enough to run, and
// none of the bot's own variables (which may hold credentials).
func serverEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
}

func tail(b []byte) string {
	const max = 2000
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

// owner is the unprivileged account the server runs as when this process is
// root: initdb and postgres refuse to run as root.
type owner struct {
	uid, gid uint32
}

func serverUser() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &owner{uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgcluster: running as root and no 'postgres' or 'nobody' user to run the server as")
}

func (o *owner) procAttr() *syscall.SysProcAttr {
	if o == nil {
		return &syscall.SysProcAttr{}
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: o.uid, Gid: o.gid}}
}

// own hands path to the server's account.
func (o *owner) own(path string) error {
	if o == nil {
		return nil
	}
	if err := os.Chown(path, int(o.uid), int(o.gid)); err != nil {
		return fmt.Errorf("pgcluster: hand %s to the server account: %w", path, err)
	}
	return nil
}

// reach lets the server's account traverse the directories above dataDir:
// a root-owned 0700 parent (os.MkdirTemp makes those) would stop it. Only
// the search bit is added; nothing becomes listable or readable.
func (o *owner) reach(dataDir string) error {
	if o == nil {
		return nil
	}
	for dir := filepath.Dir(dataDir); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("pgcluster: let the server account reach %s: %w", dir, err)
			}
		}
	}
	return nil
}

// Server is a PostgreSQL server to work on: given, a superuser URL, when it
// is set (the cluster is then nil), else a private throwaway cluster under
// dataDir. stop shuts down what Server started (nothing for given). The
// demo, the sandbox and the benchmarks all start this way.
func Server(ctx context.Context, given, dataDir string) (adminURL string, cluster *Cluster, stop func(), err error) {
	if given != "" {
		return given, nil, func() {}, nil
	}
	cluster, err = Start(ctx, Options{DataDir: dataDir, Ephemeral: true})
	if err != nil {
		return "", nil, nil, err
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cluster.Stop(ctx)
	}
	return cluster.URL("postgres"), cluster, stop, nil
}
