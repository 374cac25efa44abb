//go:build !race

package arborproto_test

const raceEnabled = false
