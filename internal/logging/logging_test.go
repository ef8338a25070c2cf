package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// connectError is shaped like pgconn.ConnectError: a struct holding a
// func (not JSON-encodable) and a secret beside its message.
type connectError struct {
	Dial     func()
	Password string
}

func (e *connectError) Error() string { return "failed to connect: connection refused" }

// TestSlogWritesErrorsAsMessages: an error River logs reaches the JSON log
// as its message, never as its marshalled struct.
func TestSlogWritesErrorsAsMessages(t *testing.T) {
	var buf bytes.Buffer
	log := Slog(zerolog.New(&buf), slog.LevelWarn)
	err := fmt.Errorf("fetch jobs: %w", &connectError{Dial: func() {}, Password: "hunter2"})
	log.Error("producer: Error fetching jobs", slog.Any("err", err), slog.String("queue", "default"))
	log.With(slog.Any("cause", errors.New("plain"))).Warn("with attrs")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got:\n%s", buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	if first["err"] != "fetch jobs: failed to connect: connection refused" || first["queue"] != "default" {
		t.Errorf("first line: %s", lines[0])
	}
	if second["cause"] != "plain" {
		t.Errorf("second line: %s", lines[1])
	}
	if bytes.Contains(buf.Bytes(), []byte("hunter2")) {
		t.Errorf("the error's fields reached the log:\n%s", buf.String())
	}
}

// TestLogConsoleWithoutColourOffTerminal: the console format written to a
// file, a pipe or a buffer has no colour codes; the lines are still there.
func TestLogConsoleWithoutColourOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "debug", "console")
	log.Warn().Str("repo", "acme/web").Err(errors.New("boom")).Msg("job failed")
	log.Info().Int("pr", 7).Msg("preview ready")
	out := buf.String()
	if strings.Contains(out, "\x1b[") {
		t.Errorf("console output to a buffer has ANSI escape codes: %q", out)
	}
	for _, want := range []string{"WRN", "job failed", "repo=acme/web", "error=boom", "INF", "preview ready", "pr=7"} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %q: %q", want, out)
		}
	}

	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fileLog := New(f, "info", "console")
	fileLog.Info().Msg("to a file")
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("\x1b[")) || !bytes.Contains(raw, []byte("to a file")) {
		t.Errorf("console output to a file: %q", raw)
	}
}
