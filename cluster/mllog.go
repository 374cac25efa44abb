package cluster

import (
	"context"
	"log/slog"
	"strings"
)

// mlLogWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// debug records of the node's logger: memberlist logs routine network
// trouble at WARN and ERR (a refused probe during a partition), which is
// noise at those levels; what matters to a user is logged by the node
// itself. memberlist's level is kept as an attribute.
type mlLogWriter struct{ log *slog.Logger }

func (w mlLogWriter) Write(p []byte) (int, error) {
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	line := strings.TrimRight(string(p), "\r\n")
	level := ""
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, line = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.log.Debug(line, "component", "memberlist", "memberlist_level", level)
	return len(p), nil
}
