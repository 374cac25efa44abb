package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// cpuModel returns the first "model name" in /proc/cpuinfo, if any.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// peerVersions lists the module versions of the peer frameworks linked in.
func peerVersions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var parts []string
	for _, d := range bi.Deps {
		switch d.Path {
		case "google.golang.org/grpc", "google.golang.org/protobuf", "storj.io/drpc":
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
			parts = append(parts, d.Path+" "+v)
		}
	}
	return strings.Join(parts, ", ")
}

func printMachine(w io.Writer, dur, warm time.Duration) {
	fmt.Fprintf(w, "machine: %s/%s, NumCPU=%d, GOMAXPROCS=%d, %s, CPU: %s\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), cpuModel())
	fmt.Fprintf(w, "run: %v per cell after %v warm-up; one client connection per system, shared by all callers; client and server in one process\n", dur, warm)
	if v := peerVersions(); v != "" {
		fmt.Fprintf(w, "peers: %s\n", v)
	}
	fmt.Fprintln(w)
}

func printResults(w io.Writer, results []result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "| system | payload | concurrency | calls/s | p50 | p99 | allocs/call | B/call |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %.1f | %.0f |\n",
			r.system, sizeLabel(r.payload), r.conc, fmtRate(r.callsPerSec), fmtDur(r.p50), fmtDur(r.p99), r.allocsPerCall, r.bytesPerCall)
	}
	fmt.Fprintln(w)
}

// printRatios tables subject against grpc and floor for each
// payload×concurrency cell where they were measured.
func printRatios(w io.Writer, results []result, subject string, sizes, concs []int) {
	type key struct {
		sys        string
		size, conc int
	}
	byKey := map[key]result{}
	for _, r := range results {
		byKey[key{r.system, r.payload, r.conc}] = r
	}
	has := func(sys string) bool {
		for _, r := range results {
			if r.system == sys {
				return true
			}
		}
		return false
	}
	if !has(subject) {
		fmt.Fprintf(w, "Ratios: %s was not measured (not selected, not built, or failed to start); no ratio table.\n\n", subject)
		return
	}
	fmt.Fprintf(w, "| payload | concurrency | %[1]s/grpc calls/s | %[1]s p99 vs grpc p99 | %[1]s/floor calls/s |\n", subject)
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	for _, size := range sizes {
		for _, c := range concs {
			s, ok := byKey[key{subject, size, c}]
			if !ok {
				continue
			}
			vsGRPC, p99, vsFloor := "n/a", "n/a", "n/a"
			if g, ok := byKey[key{"grpc", size, c}]; ok {
				vsGRPC = fmt.Sprintf("%.2fx", s.callsPerSec/g.callsPerSec)
				p99 = fmt.Sprintf("%s vs %s (%.2fx)", fmtDur(s.p99), fmtDur(g.p99), float64(s.p99)/float64(max(g.p99, 1)))
			}
			if f, ok := byKey[key{"floor", size, c}]; ok {
				vsFloor = fmt.Sprintf("%.2fx", s.callsPerSec/f.callsPerSec)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", sizeLabel(size), c, vsGRPC, p99, vsFloor)
		}
	}
	fmt.Fprintln(w)
}

func printNotes(w io.Writer, results []result, notes []string) {
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w, "- allocs/call and B/call count client and server together (same process); p50/p99 are per-call round-trip latencies seen by the callers.")
	for _, r := range results {
		if r.dropped > 0 {
			fmt.Fprintf(w, "- %s %s c%d: %d of %d latencies not recorded (sample slices full); percentiles cover the rest.\n",
				r.system, sizeLabel(r.payload), r.conc, r.dropped, r.calls)
		}
	}
}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// fmtRate formats calls/s with thousands separators.
func fmtRate(r float64) string {
	s := fmt.Sprintf("%.0f", r)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
