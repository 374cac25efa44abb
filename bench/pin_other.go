//go:build !linux

package main

import "errors"

// pinCore0 needs sched_setaffinity, which only Linux has.
func pinCore0() (func(), error) {
	return nil, errors.New("pinning to one core needs Linux (sched_setaffinity); run the tool section there")
}
