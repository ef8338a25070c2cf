package neonsim

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// proxy is the simulator's stand-in for Neon's connection proxy: the
// connection URIs the API hands out point here, not at the PostgreSQL
// server. It asks every client for its password (cleartext, over loopback),
// checks user, database and password against the branch's role, and only
// then opens a session on the real server and relays bytes both ways.
//
// Why a proxy rather than real roles and pg_hba: the servers the simulator
// runs on (internal/pgcluster, pgtest) trust every local connection, so
// PostgreSQL itself would accept any password. Authenticating here makes a
// stale password fail the way it fails on Neon — the client's connect is
// refused with 28P01 — whatever the server's pg_hba says, and keeps the
// role name users see (neondb_owner) the same on every branch, as on Neon.
// The session behind the proxy runs as the admin role of Options.AdminURL,
// as before: the proxy is the only access check, which is what Neon's
// proxy is to a compute too.
type proxy struct {
	ln    net.Listener
	check func(user, database, password string) (branchID string, perr *pgproto3.ErrorResponse)
	// backend returns the config of a session on the real server.
	backend func(database string) (*pgconn.Config, error)

	// stop ends start-ups still connecting to the server when the proxy
	// closes.
	ctx  context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	closed   bool
	sessions map[*session]struct{}
	wg       sync.WaitGroup
}

// session is one client connection, from accept to close.
type session struct {
	client   net.Conn
	backend  net.Conn // nil until authenticated
	branchID string
	pid      uint32
	key      []byte
}

// handshakeTimeout bounds a client's start-up (and the session opened for
// it), so a silent client cannot hold a goroutine forever.
const handshakeTimeout = 30 * time.Second

func startProxy(check func(user, database, password string) (string, *pgproto3.ErrorResponse), backend func(string) (*pgconn.Config, error)) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("neonsim: listen for database connections: %w", err)
	}
	p := &proxy{ln: ln, check: check, backend: backend, sessions: map[*session]struct{}{}}
	p.ctx, p.stop = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// addr is the proxy's host:port.
func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		s := &session{client: c}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.sessions[s] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			p.serve(s)
			p.end(s)
		}()
	}
}

// end closes both sides of a session and forgets it.
func (p *proxy) end(s *session) {
	p.mu.Lock()
	delete(p.sessions, s)
	backend := s.backend
	p.mu.Unlock()
	s.client.Close()
	if backend != nil {
		backend.Close()
	}
}

// close stops accepting, ends every session and waits for their goroutines.
func (p *proxy) close() {
	p.stop()
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for s := range p.sessions {
		s.client.Close()
		if s.backend != nil {
			s.backend.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// dropBranch ends the sessions of a branch, as a Neon compute restart
// (after a password reset, say) drops its connections.
func (p *proxy) dropBranch(branchID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.sessions {
		if s.branchID == branchID {
			s.client.Close()
			if s.backend != nil {
				s.backend.Close()
			}
		}
	}
}

// Start-up request codes (PostgreSQL's pqcomm.h).
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

func (p *proxy) serve(s *session) {
	c := s.client
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	var startup *pgproto3.StartupMessage
	for startup == nil {
		body, err := readStartup(c)
		if err != nil {
			return
		}
		switch code := binary.BigEndian.Uint32(body); code {
		case sslRequestCode, gssEncRequestCode:
			// No TLS here: the URIs say sslmode=disable, and a client that
			// asks anyway falls back to plain text on 'N'.
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
		case cancelRequestCode:
			var cr pgproto3.CancelRequest
			if cr.Decode(body) == nil {
				p.cancel(&cr)
			}
			return
		case pgproto3.ProtocolVersion30, pgproto3.ProtocolVersion32:
			startup = &pgproto3.StartupMessage{}
			if err := startup.Decode(body); err != nil {
				return
			}
		default:
			send(c, fatal("08P01", fmt.Sprintf("unsupported frontend protocol %d.%d", code>>16, code&0xffff)))
			return
		}
	}
	params := startup.Parameters
	if startup.ProtocolVersion != pgproto3.ProtocolVersion30 {
		// The sessions behind the proxy speak 3.0; say so, as a server
		// that knows only 3.0 would.
		var unknown []string
		for k := range params {
			if strings.HasPrefix(k, "_pq_.") {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		send(c, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown})
	}
	user, database := params["user"], params["database"]
	if database == "" {
		database = user
	}
	if params["replication"] != "" {
		send(c, fatal("42501", "replication connections are not simulated"))
		return
	}
	if err := send(c, &pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return
	}
	typ, body, err := readMessage(c)
	if err != nil || typ != 'p' {
		return
	}
	var pw pgproto3.PasswordMessage
	if err := pw.Decode(body); err != nil {
		return
	}
	branchID, perr := p.check(user, database, pw.Password)
	if perr != nil {
		send(c, perr)
		return
	}

	cfg, err := p.backend(database)
	if err != nil {
		send(c, fatal("08006", "neonsim: "+err.Error()))
		return
	}
	for k, v := range params {
		if k != "user" && k != "database" && !strings.HasPrefix(k, "_pq_.") {
			cfg.RuntimeParams[k] = v
		}
	}
	ctx, cancel := context.WithTimeout(p.ctx, handshakeTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		var pge *pgconn.PgError
		if errors.As(err, &pge) {
			send(c, fatal(pge.Code, pge.Message))
		} else {
			send(c, fatal("08006", "neonsim: the branch's compute is unreachable"))
		}
		return
	}
	if err := conn.SyncConn(ctx); err != nil {
		conn.Close(ctx)
		send(c, fatal("08006", "neonsim: the branch's compute is unreachable"))
		return
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(ctx)
		return
	}
	p.mu.Lock()
	s.backend, s.branchID, s.pid, s.key = hc.Conn, branchID, hc.PID, hc.SecretKey
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return
	}

	// The client hears what the server told the proxy's own start-up.
	msgs := []encoder{&pgproto3.AuthenticationOk{}}
	names := make([]string, 0, len(hc.ParameterStatuses))
	for k := range hc.ParameterStatuses {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: k, Value: hc.ParameterStatuses[k]})
	}
	msgs = append(msgs, &pgproto3.BackendKeyData{ProcessID: hc.PID, SecretKey: hc.SecretKey}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := send(c, msgs...); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(hc.Conn, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, hc.Conn); done <- struct{}{} }()
	<-done
	// One side ended: closing both (in end) ends the other copy; wait for
	// it so no goroutine outlives the session.
	c.Close()
	hc.Conn.Close()
	<-done
}

// cancel forwards a cancel request to the server session it names, if the
// proxy holds that session.
func (p *proxy) cancel(cr *pgproto3.CancelRequest) {
	var addr string
	p.mu.Lock()
	for s := range p.sessions {
		if s.backend != nil && s.pid == cr.ProcessID && subtle.ConstantTimeCompare(s.key, cr.SecretKey) == 1 {
			addr = s.backend.RemoteAddr().String()
		}
	}
	p.mu.Unlock()
	if addr == "" {
		return
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := send(conn, cr); err != nil {
		return
	}
	_, _ = conn.Read(make([]byte, 1)) // the server closes when done
}

func fatal(code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}
}

// encoder is a protocol message (pgproto3's, either direction).
type encoder interface{ Encode([]byte) ([]byte, error) }

// send writes messages to w in one write.
func send(w io.Writer, msgs ...encoder) error {
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	_, err := w.Write(buf)
	return err
}

// readStartup reads one start-up packet (length, then code and body) and
// returns it without its length. It reads exactly the packet, so nothing
// the client sends later is lost in a buffer.
func readStartup(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:])) - 4
	if n < 4 || n > 10000 {
		return nil, fmt.Errorf("invalid start-up packet length %d", n+4)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// readMessage reads one typed message (type, length, body).
func readMessage(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if n < 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("invalid message length %d", n+4)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}
