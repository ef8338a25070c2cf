// Package logging builds the bot's zerolog logger and lets libraries that log
// through log/slog (River, goose) write into the same JSON stream.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// New returns a logger at level ("debug", "info", "warn", "error") writing
// JSON, or human-readable lines when format is "console": in colour on a
// terminal only, since colour codes in a file or a log collector are noise.
func New(w io.Writer, level, format string) zerolog.Logger {
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// isTerminal reports whether w is a terminal (a character device: a
// redirected stdout is a file or a pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Slog returns a slog.Logger that writes through l; min drops records below
// that level (River is chatty at info).
func Slog(l zerolog.Logger, min slog.Level) *slog.Logger {
	return slog.New(&handler{l: l, min: min})
}

type handler struct {
	l     zerolog.Logger
	min   slog.Level
	attrs []slog.Attr
	group string
}

func (h *handler) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= h.min }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var ev *zerolog.Event
	switch {
	case r.Level >= slog.LevelError:
		ev = h.l.Error()
	case r.Level >= slog.LevelWarn:
		ev = h.l.Warn()
	case r.Level >= slog.LevelInfo:
		ev = h.l.Info()
	default:
		ev = h.l.Debug()
	}
	for _, a := range h.attrs {
		ev = field(ev, h.key(a.Key), a.Value.Any())
	}
	r.Attrs(func(a slog.Attr) bool {
		ev = field(ev, h.key(a.Key), a.Value.Resolve().Any())
		return true
	})
	ev.Msg(r.Message)
	return nil
}

// field adds v under key. An error is written as its message: zerolog's Any
// would marshal its struct, which for pgx's connect errors fails ("json:
// unsupported type: pgconn.DialFunc", losing the message River logs while
// the database is down) or, were it to succeed, would print the connection
// config with its password.
func field(ev *zerolog.Event, key string, v any) *zerolog.Event {
	if err, ok := v.(error); ok {
		return ev.Str(key, err.Error())
	}
	return ev.Any(key, v)
}

func (h *handler) key(k string) string {
	if h.group == "" {
		return k
	}
	return h.group + "." + k
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.key(name)
	return &c
}
