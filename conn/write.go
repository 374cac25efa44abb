package conn

import (
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// lockForAppend takes the write lock and waits while the queue is over its
// bound. It reports false (lock released) if the connection failed.
func (c *Conn) lockForAppend() error {
	c.wmu.Lock()
	for len(c.wbuf) >= c.cfg.MaxPendingWrite && c.writing && c.werr == nil {
		c.wcond.Wait()
	}
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return err
	}
	return nil
}

// flushLocked is called with wmu held after appending frames. If no write
// is in progress this goroutine becomes the writer and writes everything
// queued, including frames others queue while it writes; otherwise the
// current writer will take ours along. It returns with wmu released.
func (c *Conn) flushLocked() {
	if c.writing {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	for len(c.wbuf) > 0 && c.werr == nil {
		buf := c.wbuf
		c.wbuf = c.wspare[:0]
		c.wmu.Unlock()
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		if cap(buf) <= 1<<20 { // don't pin a burst's buffer forever
			c.wspare = buf[:0]
		} else {
			c.wspare = nil
		}
		if err != nil && c.werr == nil {
			c.werr = c.lostConnection(err)
		}
		c.wcond.Broadcast()
	}
	c.writing = false
	werr := c.werr
	c.wmu.Unlock()
	if werr != nil {
		c.closeWith(status.FromError(werr))
	}
}

// send queues one whole pre-encoded frame and flushes.
func (c *Conn) send(frame []byte) error {
	if err := c.lockForAppend(); err != nil {
		return err
	}
	c.wbuf = append(c.wbuf, frame...)
	c.flushLocked()
	return nil
}

func (c *Conn) sendControl(t wire.Type, id uint64) {
	if c.lockForAppend() != nil {
		return
	}
	c.wbuf = wire.AppendHeader(c.wbuf, wire.Header{Type: t, ID: id})
	c.flushLocked()
}

// sendPing never waits for queue space: a ping must go out even when the
// queue is full, and the keep-alive loop must not block behind a stuck write.
func (c *Conn) sendPing(pong bool, data uint64) {
	c.wmu.Lock()
	if c.werr != nil {
		c.wmu.Unlock()
		return
	}
	c.wbuf = wire.AppendPing(c.wbuf, pong, data)
	c.flushLocked()
}

func (c *Conn) sendGoAway(code uint32, msg string) {
	c.smu.Lock()
	last := c.lastIn
	c.smu.Unlock()
	if c.lockForAppend() != nil {
		return
	}
	c.wbuf = wire.AppendGoAway(c.wbuf, wire.GoAway{LastID: last, Code: code, Message: []byte(msg)})
	c.flushLocked()
}
