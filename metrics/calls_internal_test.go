package metrics

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestBucketMatchesASearch checks the power-of-two shortcut of side.bucket
// against a plain search over all bounds, for the default doubling
// buckets and for denser and sparser ones.
func TestBucketMatchesASearch(t *testing.T) {
	sets := map[string][]float64{
		"default": DefaultBuckets(),
		"linear":  prometheus.LinearBuckets(0.001, 0.001, 200), // many bounds per power of two
		"one":     {0.5},
		"tiny":    {1e-9, 2e-9, 3e-9},
		"wide":    {1e-6, 1, 1e3},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, b := range sets {
		m, err := New(prometheus.NewRegistry(), Options{Buckets: b})
		if err != nil {
			t.Fatal(err)
		}
		s := m.server
		check := func(ns int64) {
			want := sort.Search(len(s.bounds), func(i int) bool { return s.bounds[i] >= ns })
			if got := s.bucket(ns); got != want {
				t.Fatalf("%s: bucket(%d) = %d, want %d", name, ns, got, want)
			}
		}
		for _, ns := range []int64{-1, 0, 1, 2, 3} {
			check(ns)
		}
		for _, bound := range s.bounds { // each bound and its neighbours
			check(bound - 1)
			check(bound)
			check(bound + 1)
		}
		for range 100000 {
			check(rng.Int64N(int64(2 * time.Hour)))
			check(int64(1) << rng.IntN(63))
		}
		check(1<<63 - 1)
	}
}

func TestNewRefusesBadBuckets(t *testing.T) {
	for _, b := range [][]float64{{0.1, 0.1}, {0.2, 0.1}, {0}, {-1}, {1, 2, math.Inf(1)}, {math.NaN()}, {1e10}} {
		if _, err := New(prometheus.NewRegistry(), Options{Buckets: b}); err == nil {
			t.Errorf("New with Buckets %v: no error", b)
		}
	}
}
