package conn

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
)

// kaTimer is a connection's keep-alive: a timer, not a goroutine, so that
// an idle connection holds no goroutine (and no stack) for it. Its
// callbacks run one at a time (each re-arms the timer when done), so the
// state below needs no lock; mu guards stopped and the re-arming.
type kaTimer struct {
	tick, timeout      time.Duration
	lastSeen, lastPing time.Time
	seq                uint64

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// startKeepAlive pings when the connection has been quiet for an interval
// and closes it once nothing at all has arrived for KeepAliveTimeout
// (by default twice the longer of the agreed interval and the one this
// side proposed). Any frame counts as a sign of
// life, so a busy connection sends no pings; a reader paused by its memory
// budget counts as alive too, since the silence is this side's.
//
// It checks eight times per interval, so a silent peer is dropped between
// the timeout and a quarter interval after it, never before. It holds one
// count of c.loops, added by the caller (Close waits for it), until stopped.
func (c *Conn) startKeepAlive() {
	timeout := c.cfg.KeepAliveTimeout
	if timeout <= 0 {
		// Twice the interval this side proposed, or the agreed one if
		// longer: a peer that asks for quick pings (to notice quickly
		// when this side fails) does not make this side quick to drop it
		// over a silence that a loaded machine makes.
		timeout = 2 * max(c.keepAlive, c.cfg.KeepAlive)
	}
	now := time.Now()
	ka := &kaTimer{tick: max(min(c.keepAlive, timeout)/8, time.Millisecond), timeout: timeout, lastSeen: now, lastPing: now}
	c.ka.Store(ka)
	ka.mu.Lock()
	if !ka.stopped {
		ka.timer = time.AfterFunc(ka.tick, func() { c.keepAliveTick(ka) })
	}
	ka.mu.Unlock()
	select {
	case <-c.closed: // closed before closeWith could see ka
		ka.stop(c)
	default:
	}
}

// stop ends the keep-alive (idempotent): at once if no check is running,
// else the running check ends it.
func (ka *kaTimer) stop(c *Conn) {
	ka.mu.Lock()
	if ka.stopped {
		ka.mu.Unlock()
		return
	}
	ka.stopped = true
	done := ka.timer == nil || ka.timer.Stop()
	ka.mu.Unlock()
	if done {
		c.loops.Done()
	}
}

// keepAliveTick is one check.
func (c *Conn) keepAliveTick(ka *kaTimer) {
	ka.mu.Lock()
	stopped := ka.stopped
	ka.mu.Unlock()
	if stopped {
		c.loops.Done()
		return
	}
	now := time.Now()
	if c.cfg.Heartbeat != nil && now.Sub(ka.lastPing) >= c.keepAlive {
		// Heartbeats for a failure detector: a ping every interval,
		// busy or not, so that their arrivals are regular.
		ka.seq++
		ka.lastPing = now
		c.pingSeq.Store(ka.seq)
		c.pingAt.Store(now.UnixNano())
		c.sendPing(false, ka.seq)
	}
	if c.recvFlag.Swap(false) || c.readPaused.Load() {
		ka.lastSeen = now
	} else {
		c.trimWrite() // a tick without a frame: the write buffers a burst grew may go
		if quiet := now.Sub(ka.lastSeen); quiet >= ka.timeout {
			c.cfg.Logger.Warn("arbor: keep-alive timeout, closing connection", "remote", c.nc.RemoteAddr().String(), "quiet", quiet.Round(time.Millisecond))
			c.closeWith(status.Wrap(status.Unavailable, status.ErrTimeout, nil,
				fmt.Sprintf("keep-alive: no frame from %s for %v (limit %v)", c.nc.RemoteAddr(), quiet.Round(time.Millisecond), ka.timeout)))
			c.loops.Done() // closeWith stopped ka while this check ran
			return
		} else if quiet >= c.keepAlive && now.Sub(ka.lastPing) >= c.keepAlive {
			ka.seq++
			ka.lastPing = now
			c.sendPing(false, ka.seq)
		}
	}
	ka.mu.Lock()
	if ka.stopped {
		ka.mu.Unlock()
		c.loops.Done()
		return
	}
	ka.timer.Reset(ka.tick)
	ka.mu.Unlock()
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
