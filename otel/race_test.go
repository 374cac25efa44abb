//go:build race

package arborotel_test

const raceEnabled = true
