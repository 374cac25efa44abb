package cache

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// key returns a distinct test key for i.
func key(i int) Key {
	return sha256.Sum256(fmt.Appendf(nil, "key %d", i))
}

// value returns an n-byte test value for i.
func value(i, n int) []byte {
	v := make([]byte, n)
	for j := range v {
		v[j] = byte(i + j)
	}
	return v
}

func ptr(k Key) *Key { return &k }
