package cache

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// This file routes go-redis's own log lines into slog.
//
// go-redis logs through one process-wide logger (redis.SetLogger) and has
// no per-client hook; by default it prints to stderr. The first NewRedis
// therefore sets it, once, to redisLogRouter: a line logged during an
// operation of a Redis cache with a Logger goes to that Logger at Debug
// level (the cache logs an outage itself, once, at Error), found through
// the operation's context; any other line — go-redis's background
// goroutines log with context.Background() — is dropped. The router holds
// no state, so no cache leaks into another. The price: an application that
// set its own go-redis logger before its first NewRedis loses it.

var routeRedisLogsOnce sync.Once

// routeRedisLogs points go-redis's logger at redisLogRouter.
func routeRedisLogs() {
	routeRedisLogsOnce.Do(func() { redis.SetLogger(redisLogRouter{}) })
}

// redisLogKey is the context key under which an operation carries its
// cache's *slog.Logger.
type redisLogKey struct{}

type redisLogRouter struct{}

func (redisLogRouter) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		return
	}
	l, _ := ctx.Value(redisLogKey{}).(*slog.Logger)
	if l == nil || !l.Enabled(ctx, slog.LevelDebug) {
		return
	}
	l.LogAttrs(ctx, slog.LevelDebug, "cache: go-redis", slog.String("line", strings.TrimSpace(fmt.Sprintf(format, v...))))
}
