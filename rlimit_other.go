//go:build !unix

package arbor

// fdLimit is unknown here.
func fdLimit() int { return 0 }
