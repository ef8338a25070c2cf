// Package pgcluster runs a private PostgreSQL server from the server binaries
// installed on the machine. It is what the bot, the demo and the tests use when
// no database URL is given, so that a first try needs nothing but PostgreSQL's
// packages.
//
// A cluster lives in a data directory. Start initialises it on first use,
// starts a postmaster listening only on 127.0.0.1, and adopts a postmaster
// that is already running on the same directory (left behind by a process
// that was killed), so a restarted bot finds its state where it left it.
//
// Loopback is not private: every process on the host, repository commands
// included, can connect to 127.0.0.1. So TCP connections need the
// superuser's password (scram-sha-256), generated when the cluster is
// initialised and kept in the data directory (0700) in a 0600 file; the URLs
// the cluster hands out carry it. The server has no Unix socket.
package pgcluster

import (
	"bufio"
	"context"
	"crypto/rand"
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
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the role initdb creates, the only one the cluster's URLs use.
const Superuser = "deploybot"

// PasswordFile, in the data directory, holds Superuser's password.
const PasswordFile = "superuser.password"

// PortFile, in the data directory, holds the port the cluster listens on:
// chosen once, when it is first started, and kept across restarts, so
// that an operator (psql, a backup script) finds the bot's database where
// it was yesterday.
const PortFile = "deploybot.port"

// hbaConf is the whole of pg_hba.conf, written at every start so that a
// cluster initialised by an older version (--auth=trust) is closed too.
const hbaConf = `# Written by deploybot (internal/pgcluster) at every start: edits are lost.
# Every process on the host can reach 127.0.0.1, so TCP connections need the
# superuser's password (` + PasswordFile + ` in this directory).
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128      scram-sha-256
`

// Options configures Start.
type Options struct {
	// DataDir holds the cluster. It is created if missing.
	DataDir string
	// Ephemeral trades durability for speed (fsync off): for tests and demos
	// whose data is thrown away.
	Ephemeral bool
	// Logf receives progress messages. Nil discards them.
	Logf func(format string, args ...any)
	// Port is the TCP port the server listens on; 0 means the port kept in
	// DataDir's PortFile, or a free one at the first start (then kept
	// there). Either way Start fails, saying so, if the port is taken: a
	// client holding a URL across a restart of the server needs the same
	// port again. A postmaster already running on DataDir is adopted on
	// whatever port it has.
	Port int
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dataDir  string
	binDir   string
	port     int
	password string    // Superuser's
	cmd      *exec.Cmd // nil when an already running postmaster was adopted
	exited   chan struct{}
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
	owner, err := serverUser()
	if err != nil {
		return nil, err
	}

	if port, ok := runningPostmaster(dataDir); ok {
		c.port = port
		if err := c.adopt(ctx, owner); err == nil {
			logf("adopted the PostgreSQL server already running on %s (port %d)", dataDir, port)
			if err := writeFileAtomic(filepath.Join(dataDir, PortFile), []byte(strconv.Itoa(port)+"\n"), nil); err != nil {
				return nil, err
			}
			return c, nil
		} else if !errors.Is(err, errNotServing) {
			return nil, err
		}
	}

	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		logf("initialising a private PostgreSQL cluster in %s with %s", dataDir, binDir)
		if err := c.initdb(ctx, owner, opts.Ephemeral, "--auth-local=trust", "--auth-host=scram-sha-256"); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if c.password, err = readPassword(dataDir); err != nil {
		return nil, err
	}
	if c.password == "" {
		// A new cluster, or one initialised with --auth=trust by an older
		// version: give the superuser a password before the server listens.
		logf("setting a password for PostgreSQL role %s (kept in %s)", Superuser, filepath.Join(dataDir, PasswordFile))
		if err := c.setPasswordOffline(ctx, owner); err != nil {
			return nil, err
		}
	}
	if _, err := c.writeHBA(owner); err != nil {
		return nil, err
	}

	port, kept, err := keptPort(dataDir, opts.Port)
	if err != nil {
		return nil, err
	}
	// A port this cluster already uses (given, or kept from an earlier
	// start) is the only one it may have: when another process holds it,
	// say so rather than move the database somewhere its clients do not
	// look.
	if port != 0 {
		if err := checkFree(port); err != nil {
			where := "asked for"
			if kept {
				where = fmt.Sprintf("kept in %s since its first start", filepath.Join(dataDir, PortFile))
			}
			return nil, fmt.Errorf("pgcluster: port %d of the PostgreSQL cluster in %s (%s) is taken by another process: stop that process, or delete %s to move the cluster to a free port at the next start: %w",
				port, dataDir, where, filepath.Join(dataDir, PortFile), err)
		}
	}

	// Another process may take a port picked here between our probe and the
	// server's bind; postgres then exits at once and we try the next free
	// port. A given or kept port is tried once: there is no other to fall
	// back on.
	var lastErr error
	for range 5 {
		c.port = port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if lastErr = c.start(ctx, owner, opts.Ephemeral); lastErr == nil {
			if err := writeFileAtomic(filepath.Join(dataDir, PortFile), []byte(strconv.Itoa(c.port)+"\n"), nil); err != nil {
				_ = c.Stop(ctx)
				return nil, err
			}
			logf("started a private PostgreSQL server on 127.0.0.1:%d (data in %s)", c.port, dataDir)
			return c, nil
		}
		if ctx.Err() != nil || port != 0 {
			break
		}
	}
	return nil, lastErr
}

// keptPort is the port to start on: given when not 0, else the one in the
// data directory's PortFile (kept reports that), else 0 (pick one).
func keptPort(dataDir string, given int) (port int, kept bool, err error) {
	if given != 0 {
		return given, false, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, PortFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("pgcluster: read the cluster's port: %w", err)
	}
	port, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || port <= 0 || port > 65535 {
		return 0, false, fmt.Errorf("pgcluster: %s holds %q, not a port: delete it to pick a free port at the next start", filepath.Join(dataDir, PortFile), strings.TrimSpace(string(b)))
	}
	return port, true, nil
}

// checkFree reports whether nothing listens on 127.0.0.1:port.
func checkFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// Describe is the cluster in dataDir as its files say, without starting
// it: its URLs reach it once it runs. running reports whether a postmaster
// serves it now (its port is then the one it listens on).
func Describe(dataDir string) (c *Cluster, running bool, err error) {
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return nil, false, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		return nil, false, fmt.Errorf("pgcluster: no cluster in %s: %w", dataDir, err)
	}
	c = &Cluster{dataDir: dataDir}
	if c.password, err = readPassword(dataDir); err != nil {
		return nil, false, err
	}
	if port, ok := runningPostmaster(dataDir); ok {
		c.port = port
		return c, true, nil
	}
	if c.port, _, err = keptPort(dataDir, 0); err != nil {
		return nil, false, err
	}
	if c.port == 0 {
		return nil, false, fmt.Errorf("pgcluster: the cluster in %s has no port yet (%s is missing): it gets one at its next start", dataDir, PortFile)
	}
	return c, false, nil
}

// PasswordPath is the file holding the superuser's password.
func (c *Cluster) PasswordPath() string { return filepath.Join(c.dataDir, PasswordFile) }

// Port is the TCP port the server listens on (on 127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// URL is a connection URL for database on the cluster, with the
// superuser's password.
func (c *Cluster) URL(database string) string { return c.urlWith(c.password, database) }

func (c *Cluster) urlWith(password, database string) string {
	user := url.UserPassword(Superuser, password)
	if password == "" {
		user = url.User(Superuser)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     user,
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

// initdb creates the cluster; auth are its authentication options.
func (c *Cluster) initdb(ctx context.Context, owner *owner, ephemeral bool, auth ...string) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: create %s: %w", c.dataDir, err)
	}
	if err := owner.own(c.dataDir); err != nil {
		return err
	}
	if err := owner.reach(c.dataDir); err != nil {
		return err
	}
	args := append([]string{"-D", c.dataDir, "-U", Superuser, "--encoding=UTF8", "--locale=C"}, auth...)
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
		if refused(err) {
			return fmt.Errorf("%w: the server refuses role %s's password from %s: %v (if the file is stale, delete it while the server is stopped: the next start sets a new password)",
				errRefused, Superuser, filepath.Join(c.dataDir, PasswordFile), err)
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

// errRefused is a server that answered and refused the credentials.
var errRefused = errors.New("pgcluster: authentication failed")

// refused reports whether err is the server refusing the credentials
// (SQLSTATE class 28, invalid authorization).
func refused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28")
}

// errNotServing says an adopted postmaster did not answer: Start then
// starts its own.
var errNotServing = errors.New("pgcluster: the running postmaster does not answer")

// adopt takes over the postmaster already serving the data directory. One
// started by an older version trusts every loopback connection: it is
// closed here, while still open, by setting the password over TCP, then
// writing pg_hba.conf and reloading.
func (c *Cluster) adopt(ctx context.Context, owner *owner) error {
	var err error
	if c.password, err = readPassword(c.dataDir); err != nil {
		return err
	}
	if c.password == "" {
		pw := rand.Text()
		conn, err := c.connectWithin(ctx, "")
		if refused(err) {
			return fmt.Errorf("pgcluster: the server running on %s wants a password, and %s is missing: stop it (pg_ctl stop -D %s) and start again, which sets a new one: %w",
				c.dataDir, PasswordFile, c.dataDir, err)
		}
		if err != nil {
			return errNotServing
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
			return fmt.Errorf("pgcluster: set password_encryption on the running server: %w", err)
		}
		if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{Superuser}.Sanitize()+" PASSWORD "+quote(pw)); err != nil {
			return fmt.Errorf("pgcluster: set role %s's password on the running server: %w", Superuser, err)
		}
		if err := writePassword(c.dataDir, pw); err != nil {
			return err
		}
		c.password = pw
	}
	changed, err := c.writeHBA(owner)
	if err != nil {
		return err
	}
	if changed {
		conn, err := c.connectWithin(ctx, c.password)
		if err != nil {
			return errNotServing
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			return fmt.Errorf("pgcluster: reload pg_hba.conf on the running server: %w", err)
		}
	}
	if err := c.waitReady(ctx, nil); err != nil {
		if errors.Is(err, errRefused) {
			return err
		}
		return errNotServing
	}
	return nil
}

// connectWithin connects to the adopted server with password, giving up
// after a few seconds: a postmaster that does not answer is not adopted.
func (c *Cluster) connectWithin(ctx context.Context, password string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, c.urlWith(password, "postgres"))
}

// setPasswordOffline gives Superuser a new password with the server
// stopped, in single-user mode (no network, no socket), and then saves it.
// The password goes to postgres on stdin, never on a command line.
func (c *Cluster) setPasswordOffline(ctx context.Context, owner *owner) error {
	pw := rand.Text()
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "postgres"), "--single", "-D", c.dataDir,
		"-c", "password_encryption=scram-sha-256", "postgres")
	cmd.SysProcAttr = owner.procAttr()
	cmd.Env = serverEnv()
	cmd.Stdin = strings.NewReader("ALTER ROLE " + pgx.Identifier{Superuser}.Sanitize() + " PASSWORD " + quote(pw) + "\n")
	out, err := cmd.CombinedOutput()
	// Single-user mode exits 0 after a failed statement: look for its error.
	if err != nil || strings.Contains(string(out), "ERROR:") {
		return fmt.Errorf("pgcluster: set role %s's password in single-user mode on %s: %v\n%s", Superuser, c.dataDir, err, tail(out))
	}
	if err := writePassword(c.dataDir, pw); err != nil {
		return err
	}
	c.password = pw
	return nil
}

// quote makes a SQL string literal of s (rand.Text: letters and digits).
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// readPassword returns the saved password, "" when there is none yet.
func readPassword(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, PasswordFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pgcluster: read the superuser's password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writePassword saves the password 0600, replacing the file in one step.
func writePassword(dataDir, pw string) error {
	return writeFileAtomic(filepath.Join(dataDir, PasswordFile), []byte(pw+"\n"), nil)
}

// writeHBA writes pg_hba.conf unless it already says exactly hbaConf, and
// reports whether it changed. The server's account must be able to read it.
func (c *Cluster) writeHBA(owner *owner) (bool, error) {
	path := filepath.Join(c.dataDir, "pg_hba.conf")
	if old, err := os.ReadFile(path); err == nil && string(old) == hbaConf {
		return false, nil
	}
	if err := writeFileAtomic(path, []byte(hbaConf), owner); err != nil {
		return false, err
	}
	return true, nil
}

// writeFileAtomic writes a 0600 file (handed to owner, when given) beside
// path and renames it into place, so no reader sees half a file.
func writeFileAtomic(path string, data []byte, owner *owner) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("pgcluster: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = owner.own(tmp.Name())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("pgcluster: write %s: %w", path, err)
	}
	return nil
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
// dataDir (empty: a temporary directory, removed by stop). stop shuts down
// what Server started (nothing for given). The demo, the sandbox and the
// benchmarks all start this way.
func Server(ctx context.Context, given, dataDir string) (adminURL string, cluster *Cluster, stop func(), err error) {
	if given != "" {
		return given, nil, func() {}, nil
	}
	removeDir := func() {}
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "deploybot-pg-")
		if err != nil {
			return "", nil, nil, err
		}
		dataDir, removeDir = filepath.Join(tmp, "pg"), func() { _ = os.RemoveAll(tmp) }
	}
	cluster, err = Start(ctx, Options{DataDir: dataDir, Ephemeral: true})
	if err != nil {
		removeDir()
		return "", nil, nil, err
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cluster.Stop(ctx)
		removeDir()
	}
	return cluster.URL("postgres"), cluster, stop, nil
}
