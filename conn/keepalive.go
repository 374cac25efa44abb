package conn

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
)

// keepAliveLoop pings when the connection has been quiet for an interval
// and closes it when nothing at all has arrived for KeepAliveTimeout. Any
// frame counts as a sign of life, so a busy connection sends no pings.
func (c *Conn) keepAliveLoop() {
	defer c.loops.Done()
	timeout := c.cfg.KeepAliveTimeout
	if timeout <= 0 {
		timeout = 2 * c.keepAlive
	}
	t := time.NewTicker(c.keepAlive)
	defer t.Stop()
	var quiet time.Duration
	var seq uint64
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		if c.recvFlag.Swap(false) {
			quiet = 0
			continue
		}
		quiet += c.keepAlive
		if quiet > timeout {
			c.cfg.Logger.Warn("arbor: keep-alive timeout, closing connection", "remote", c.nc.RemoteAddr().String(), "quiet", quiet)
			c.closeWith(status.Wrap(status.Unavailable, status.ErrTimeout, nil,
				fmt.Sprintf("keep-alive: no frame from %s for %v", c.nc.RemoteAddr(), quiet)))
			return
		}
		seq++
		c.sendPing(false, seq)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
