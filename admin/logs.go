package admin

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// LogLine is one log record as the console shows it.
type LogLine struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"msg"`
	Attrs   string    `json:"attrs"` // key=value pairs, in order
}

// LogBuffer keeps the most recent log lines of a process for the console
// and tells the console's streams about new ones. Its Handler wraps a
// slog.Handler: records go to both. Safe for concurrent use.
type LogBuffer struct {
	mu     sync.Mutex
	lines  []LogLine // ring
	next   int
	seq    uint64
	notify map[chan struct{}]struct{}
	level  slog.Leveler
}

// NewLogBuffer keeps up to size lines (default 500) of level and above
// (default Info).
func NewLogBuffer(size int, level slog.Leveler) *LogBuffer {
	if size <= 0 {
		size = 500
	}
	if level == nil {
		level = slog.LevelInfo
	}
	return &LogBuffer{lines: make([]LogLine, 0, size), notify: map[chan struct{}]struct{}{}, level: level}
}

// Handler returns a slog.Handler that records into the buffer and passes
// every record on to next (nil: only the buffer).
func (b *LogBuffer) Handler(next slog.Handler) slog.Handler { return &logHandler{b: b, next: next} }

func (b *LogBuffer) add(l LogLine) {
	b.mu.Lock()
	b.seq++
	l.Seq = b.seq
	if len(b.lines) < cap(b.lines) {
		b.lines = append(b.lines, l)
	} else {
		b.lines[b.next] = l
		b.next = (b.next + 1) % cap(b.lines)
	}
	for ch := range b.notify {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
}

// Since returns the lines after sequence number seq, oldest first.
func (b *LogBuffer) Since(seq uint64) []LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []LogLine
	n := len(b.lines)
	for i := 0; i < n; i++ {
		l := b.lines[(b.next+i)%n]
		if l.Seq > seq {
			out = append(out, l)
		}
	}
	return out
}

// watch returns a channel that gets a value when lines are added.
func (b *LogBuffer) watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.notify[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.notify, ch)
		b.mu.Unlock()
	}
}

type logHandler struct {
	b      *LogBuffer
	next   slog.Handler
	attrs  []slog.Attr
	groups []string
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.b.level.Level() || (h.next != nil && h.next.Enabled(ctx, l))
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= h.b.level.Level() {
		var sb strings.Builder
		prefix := strings.Join(h.groups, ".")
		write := func(a slog.Attr) {
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			k := a.Key
			if prefix != "" {
				k = prefix + "." + k
			}
			fmt.Fprintf(&sb, "%s=%v", k, a.Value.Resolve())
		}
		for _, a := range h.attrs {
			write(a)
		}
		r.Attrs(func(a slog.Attr) bool { write(a); return true })
		h.b.add(LogLine{Time: r.Time, Level: r.Level.String(), Message: r.Message, Attrs: truncate(sb.String(), 2000)})
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	if h.next != nil {
		c.next = h.next.WithAttrs(as)
	}
	return &c
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.groups = append(append([]string(nil), h.groups...), name)
	if h.next != nil {
		c.next = h.next.WithGroup(name)
	}
	return &c
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
