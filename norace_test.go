//go:build !race

package arbor_test

const raceEnabled = false
