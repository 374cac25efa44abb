//go:build !race

package typecache

const raceEnabled = false
