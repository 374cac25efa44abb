package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/arbor-rpc/arbor/resolve"
)

// events streams the console's updates as Server-Sent Events:
//
//	hello   the full snapshot (with trees and log lines), first
//	stats   the snapshot without trees and logs, every Interval
//	tree    a resolve.Event: a tree submitted, a request's new state, a tree done or dropped
//	trees   the full list of trees, after this stream missed tree events
//	log     a LogLine
//
// Tree changes and log lines go out as they happen; nothing is polled by
// the page.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported by this connection", http.StatusInternalServerError)
		return
	}
	if n := h.streams.Add(1); n > int64(h.opts.MaxStreams) {
		h.streams.Add(-1)
		http.Error(w, fmt.Sprintf("too many console streams open (limit %d)", h.opts.MaxStreams), http.StatusServiceUnavailable)
		return
	}
	defer h.streams.Add(-1)
	ctx := r.Context()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	// Subscribe before the first snapshot, so nothing falls between.
	var sub *resolve.Subscription
	treeEvents := make(chan resolve.Event, 64)
	if e := h.opts.Engine; e != nil {
		sub = e.Subscribe(resolve.SubscribeOptions{Buffer: 1024})
		defer sub.Close()
		go func() {
			defer close(treeEvents)
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					return
				}
				select {
				case treeEvents <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
	} else {
		close(treeEvents)
	}
	var logWake <-chan struct{}
	var logSeq uint64
	if b := h.opts.Logs; b != nil {
		ch, stop := b.watch()
		defer stop()
		logWake = ch
	}

	// A client that stops reading (its receive window full) would block
	// a write for as long as its connection lives, holding its place
	// under MaxStreams: every write has a deadline, past which the
	// stream is dropped.
	rc := http.NewResponseController(w)
	arm := func() { rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) }

	snap := h.snapshot(true)
	for _, l := range snap.Logs {
		logSeq = max(logSeq, l.Seq)
	}
	arm()
	if !h.send(w, "hello", snap) {
		return
	}
	fl.Flush()
	tick := time.NewTicker(h.opts.Interval)
	defer tick.Stop()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			arm()
			if !h.send(w, "stats", h.snapshot(false)) {
				return
			}
		case ev, ok := <-treeEvents:
			if !ok {
				treeEvents = nil
				continue
			}
			arm()
			if ev.Missed > 0 {
				if !h.send(w, "trees", h.trees()) {
					return
				}
			}
			if !h.send(w, "tree", ev) {
				return
			}
		case <-logWake:
			arm()
			for _, l := range h.opts.Logs.Since(logSeq) {
				logSeq = l.Seq
				if !h.send(w, "log", l) {
					return
				}
			}
		case <-keep.C:
			arm()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		}
		fl.Flush()
	}
}

// streamWriteTimeout bounds how long a write to a console stream may
// block before the stream is dropped.
const streamWriteTimeout = 10 * time.Second

// send writes one event; false when the client has gone.
func (h *handler) send(w http.ResponseWriter, event string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		h.opts.Logger.Error("admin: encoding a console event", "event", event, "err", err)
		return true
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	return err == nil
}

// streamsOpen reports the console streams open now (for tests).
func (h *handler) streamsOpen() int64 { return h.streams.Load() }
