package cluster

import "sync"

// subscriber delivers events to one reader without ever making the
// producer wait: events go into a bounded ring, and a goroutine per
// subscriber moves them to the reader's channel. When the ring is full
// the oldest event is dropped and the next one in line counts it in
// Event.Missed; memberlist's callbacks (which hold memberlist's lock)
// therefore cost one short critical section per subscriber, whatever the
// readers do.
type subscriber struct {
	mu   sync.Mutex
	ring []Event
	head int
	n    int

	wake chan struct{} // capacity 1: "the ring is not empty"
	out  chan Event
	stop chan struct{}
	done chan struct{} // closed when the delivery goroutine has returned
	once sync.Once
}

func newSubscriber(size int) *subscriber {
	s := &subscriber{
		ring: make([]Event, size),
		wake: make(chan struct{}, 1),
		out:  make(chan Event),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.deliver()
	return s
}

// push queues ev; it never blocks.
func (s *subscriber) push(ev Event) {
	s.mu.Lock()
	if s.n == len(s.ring) {
		lost := s.ring[s.head].Missed + 1
		s.ring[s.head] = Event{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		if s.n > 0 {
			s.ring[s.head].Missed += lost
		} else {
			ev.Missed += lost
		}
	}
	s.ring[(s.head+s.n)%len(s.ring)] = ev
	s.n++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) pop() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return Event{}, false
	}
	ev := s.ring[s.head]
	s.ring[s.head] = Event{}
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	return ev, true
}

func (s *subscriber) deliver() {
	defer close(s.done)
	defer close(s.out)
	for {
		select {
		case <-s.wake:
		case <-s.stop:
			return
		}
		for {
			ev, ok := s.pop()
			if !ok {
				break
			}
			select {
			case s.out <- ev:
			case <-s.stop:
				return
			}
		}
	}
}

// close stops delivery and closes the reader's channel; queued events are
// discarded. It waits for the delivery goroutine, so none outlives it.
func (s *subscriber) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}
