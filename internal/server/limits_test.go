package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palantir/go-githubapp/githubapp"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/server"
)

// countingReader is a request body that counts what the server read of it.
type countingReader struct {
	r    io.Reader
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func bare(opts server.Options) http.Handler {
	opts.WebhookSecret = secret
	opts.Logger = zerolog.Nop()
	return server.New(opts)
}

// TestUnauthenticatedBodiesAreNotBuffered: a request without a well-formed
// signature is refused before a byte of its body is read, and a wrongly
// signed body without a length is read no further than MaxBodyBytes.
func TestUnauthenticatedBodiesAreNotBuffered(t *testing.T) {
	h := bare(server.Options{})
	for _, sig := range []string{"", "sha256=zz", "sha1=" + strings.Repeat("0", 40), "sha256=" + strings.Repeat("0", 63)} {
		body := &countingReader{r: io.LimitReader(zeros{}, 20<<20)}
		req := httptest.NewRequest(http.MethodPost, server.WebhookPath, body)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "u-1")
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("signature %q: status %d, want 401", sig, rec.Code)
		}
		if n := body.read.Load(); n != 0 {
			t.Errorf("signature %q: read %d bytes of an unauthenticated body", sig, n)
		}
	}

	body := &countingReader{r: zeros{}}
	req := httptest.NewRequest(http.MethodPost, server.WebhookPath, body)
	req.ContentLength = -1 // chunked: no length announced
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "u-2")
	req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("endless body: status %d, want 413", rec.Code)
	}
	if n := body.read.Load(); n > server.MaxBodyBytes+64<<10 {
		t.Errorf("read %d bytes of an endless body, want at most about %d", n, server.MaxBodyBytes)
	}
}

// blocker handles the made-up event "hold": it says it entered and waits
// for release, keeping its request in progress.
type blocker struct {
	entered chan string
	release chan struct{}
}

func (blocker) Handles() []string { return []string{"hold"} }

func (b blocker) Handle(ctx context.Context, _, deliveryID string, _ []byte) error {
	select {
	case b.entered <- deliveryID:
		<-b.release
	case <-b.release: // released already: nothing to hold
	}
	return nil
}

// TestBusyEndpointAnswers503: with every slot (or all the body memory)
// taken by requests in progress, the next delivery is answered 503 with
// Retry-After instead of waiting without bound, and is served again once
// room is made.
func TestBusyEndpointAnswers503(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits server.Limits
		hold   int
		length int64 // -1: chunked, reserving MaxBodyBytes
	}{
		{"slots", server.Limits{Concurrent: 2, Wait: 100 * time.Millisecond}, 2, 0},
		{"memory", server.Limits{Concurrent: 10, Bytes: server.MaxBodyBytes, Wait: 100 * time.Millisecond}, 1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := blocker{entered: make(chan string), release: make(chan struct{})}
			observed := make(chan string, tc.hold+2)
			observe := func(event, outcome string, _ time.Duration) { observed <- event + " " + outcome }
			srv := httptest.NewServer(bare(server.Options{Handlers: []githubapp.EventHandler{b}, Limits: tc.limits, Observe: observe}))
			defer srv.Close()
			send := func(id string, chunked bool) (*http.Response, error) {
				payload := []byte(`{"installation":{"id":1}}`)
				var body io.Reader = strings.NewReader(string(payload))
				if chunked {
					body = io.MultiReader(body) // hides the length
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+server.WebhookPath, body)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-GitHub-Event", "hold")
				req.Header.Set("X-GitHub-Delivery", id)
				req.Header.Set("X-Hub-Signature-256", sign(payload))
				return http.DefaultClient.Do(req)
			}
			held := make(chan error, tc.hold)
			for i := range tc.hold {
				go func() {
					resp, err := send(fmt.Sprintf("held-%d", i), tc.length < 0)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("held request: status %d", resp.StatusCode)
						}
					}
					held <- err
				}()
				select {
				case <-b.entered:
				case err := <-held:
					t.Fatalf("the request to hold ended: %v", err)
				}
			}
			resp, err := send("extra", false)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("with the endpoint full: %d %q (Retry-After %q), want 503 with Retry-After", resp.StatusCode, msg, resp.Header.Get("Retry-After"))
			}
			// The held requests have not been answered: the first
			// request observed is the one refused.
			if got := <-observed; got != "hold busy" {
				t.Errorf("the refused request was observed as %q, want \"hold busy\"", got)
			}
			close(b.release)
			for range tc.hold {
				if err := <-held; err != nil {
					t.Error(err)
				}
			}
			resp, err = send("after", false)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("once room is made: status %d, want 200", resp.StatusCode)
			}
		})
	}
}

// TestSlowClientsAreCut: a client that sends its headers or its body too
// slowly has its connection closed by HTTPServer's timeouts rather than
// holding it (and a goroutine) for ever.
func TestSlowClientsAreCut(t *testing.T) {
	srv := server.HTTPServer(bare(server.Options{}), server.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	for name, sent := range map[string]string{
		"headers never finished": "POST " + server.WebhookPath + " HTTP/1.1\r\nHost: bot\r\nX-GitHub-Event: push\r\n",
		"body never finished": "POST " + server.WebhookPath + " HTTP/1.1\r\nHost: bot\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: s-1\r\n" +
			"X-Hub-Signature-256: sha256=" + strings.Repeat("0", 64) + "\r\nContent-Length: 1000\r\n\r\n{\"action\":",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, sent); err != nil {
				t.Fatal(err)
			}
			// Generous: the server's timeouts are well under a second;
			// without them this deadline is what ends the read.
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err = io.Copy(io.Discard, bufio.NewReader(conn))
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatal("the server kept a slow connection open")
			}
		})
	}
}

// TestReadinessHidesItsReason: /readyz says "not ready" and nothing else;
// the database error (host, user) is for the log only.
func TestReadinessHidesItsReason(t *testing.T) {
	h := bare(server.Options{Ready: func(context.Context) error {
		return errors.New(`failed to connect to host=db.internal user=deploybot database=deploybot: password authentication failed`)
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != "not ready" {
		t.Errorf("/readyz: %d %q, want 503 \"not ready\"", rec.Code, rec.Body.String())
	}
}
