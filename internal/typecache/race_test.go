//go:build race

package typecache

const raceEnabled = true
