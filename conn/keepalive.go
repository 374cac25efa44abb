package conn

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
)

// keepAliveLoop pings when the connection has been quiet for an interval
// and closes it once nothing at all has arrived for KeepAliveTimeout
// (twice the agreed interval by default). Any frame counts as a sign of
// life, so a busy connection sends no pings; a reader paused by its memory
// budget counts as alive too, since the silence is this side's.
//
// It checks eight times per interval, so a silent peer is dropped between
// the timeout and a quarter interval after it, never before.
func (c *Conn) keepAliveLoop() {
	defer c.loops.Done()
	timeout := c.cfg.KeepAliveTimeout
	if timeout <= 0 {
		timeout = 2 * c.keepAlive
	}
	tick := max(min(c.keepAlive, timeout)/8, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	lastSeen := time.Now()
	lastPing := lastSeen
	var seq uint64
	for {
		var now time.Time
		select {
		case <-c.closed:
			return
		case now = <-t.C:
		}
		if c.cfg.Heartbeat != nil && now.Sub(lastPing) >= c.keepAlive {
			// Heartbeats for a failure detector: a ping every interval,
			// busy or not, so that their arrivals are regular.
			seq++
			lastPing = now
			c.pingSeq.Store(seq)
			c.pingAt.Store(now.UnixNano())
			c.sendPing(false, seq)
		}
		if c.recvFlag.Swap(false) || c.readPaused.Load() {
			lastSeen = now
			continue
		}
		quiet := now.Sub(lastSeen)
		if quiet >= timeout {
			c.cfg.Logger.Warn("arbor: keep-alive timeout, closing connection", "remote", c.nc.RemoteAddr().String(), "quiet", quiet.Round(time.Millisecond))
			c.closeWith(status.Wrap(status.Unavailable, status.ErrTimeout, nil,
				fmt.Sprintf("keep-alive: no frame from %s for %v (limit %v)", c.nc.RemoteAddr(), quiet.Round(time.Millisecond), timeout)))
			return
		}
		if quiet >= c.keepAlive && now.Sub(lastPing) >= c.keepAlive {
			seq++
			lastPing = now
			c.sendPing(false, seq)
		}
	}
}

// pong reports the answer to this side's latest ping to the heartbeat
// hook, with its round trip.
func (c *Conn) pong(seq uint64) {
	if seq == c.pingSeq.Load() {
		c.cfg.Heartbeat(time.Duration(time.Now().UnixNano() - c.pingAt.Load()))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
