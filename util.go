package arbor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func sortInfos(fs []FunctionInfo) {
	slices.SortFunc(fs, func(a, b FunctionInfo) int { return strings.Compare(a.ID, b.ID) })
}

// maxQuoted bounds what an error message quotes of a peer's input.
const maxQuoted = 200

// quote quotes a peer's bytes for a message, shortened past maxQuoted.
func quote(b []byte) string {
	if len(b) <= maxQuoted {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(string(b[:maxQuoted])), len(b))
}

// limitedHandler passes at most a few log records per second to its
// handler and then one line saying how many it dropped: connection
// events come from peers, and a flood of bad peers must not flood the log.
type limitedHandler struct {
	h slog.Handler
	l *logLimiter
}

func (h limitedHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return h.h.Enabled(ctx, lvl)
}
func (h limitedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return limitedHandler{h.h.WithAttrs(as), h.l}
}
func (h limitedHandler) WithGroup(name string) slog.Handler {
	return limitedHandler{h.h.WithGroup(name), h.l}
}

func (h limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if dropped, ok := h.l.allow(); ok {
		if dropped > 0 {
			note := slog.NewRecord(r.Time, slog.LevelInfo, "arbor: log lines dropped (rate limit)", 0)
			note.AddAttrs(slog.Int("count", dropped))
			h.h.Handle(ctx, note)
		}
		return h.h.Handle(ctx, r)
	}
	return nil
}

// logLimiter lets perSecond lines through per second.
type logLimiter struct {
	mu      sync.Mutex
	window  time.Time
	n       int
	dropped int
}

const perSecond = 10

// allow reports whether a line may go out now, and how many were dropped
// before it (to report once).
func (l *logLimiter) allow() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	dropped := 0
	if now.Sub(l.window) >= time.Second {
		dropped = l.dropped
		l.window, l.n, l.dropped = now, 0, 0
	}
	l.n++
	if l.n > perSecond {
		l.dropped++
		return 0, false
	}
	return dropped, true
}

// log logs through the limiter.
func (l *logLimiter) log(logger *slog.Logger, msg string, args ...any) {
	if dropped, ok := l.allow(); ok {
		if dropped > 0 {
			logger.Info("arbor: log lines dropped (rate limit)", "count", dropped)
		}
		logger.Info(msg, args...)
	}
}
