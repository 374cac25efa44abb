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
		case "google.golang.org/grpc", "google.golang.org/protobuf", "storj.io/drpc", "connectrpc.com/connect",
			"github.com/smallnest/rpcx", "github.com/cloudwego/kitex", "capnproto.org/go/capnp/v3":
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
	fmt.Fprintf(w, "run: %v per cell after %v warm-up; one client connection per system, shared by all callers (or streams); client and server in one process\n", dur, warm)
	if v := peerVersions(); v != "" {
		fmt.Fprintf(w, "peers: %s\n", v)
	}
	fmt.Fprintln(w)
}

func printResults(w io.Writer, results []result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "| system | payload | concurrency | calls/s | p50 | p99 | p99.9 | "+cpuHead(results)+" | allocs/call | B/call |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %.1f | %.0f |\n",
			r.system, sizeLabel(r.payload), r.conc, fmtRate(r.callsPerSec), fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.p999), fmtCPU(r), r.allocsPerCall, r.bytesPerCall)
	}
	fmt.Fprintln(w)
}

// cpuHead is the CPU column's heading: one process, or client / server.
func cpuHead(results []result) string {
	for _, r := range results {
		if r.separate {
			return "CPU µs/call client / server"
		}
	}
	return "CPU µs/call"
}

// cellKey is a result's system and cell, as the ratio tables look
// results up.
type cellKey struct {
	sys        string
	size, conc int
}

// byCell indexes results by system and cell.
func byCell(results []result) map[cellKey]result {
	m := make(map[cellKey]result, len(results))
	for _, r := range results {
		m[cellKey{r.system, r.payload, r.conc}] = r
	}
	return m
}

// fmtCPU is a cell's CPU per call: user+system µs from getrusage.
func fmtCPU(r result) string {
	if r.separate {
		return fmt.Sprintf("%.1f / %.1f", r.clientCPU, r.serverCPU)
	}
	return fmt.Sprintf("%.1f", r.cpuPerCall)
}

// printRatios tables subject against grpc and floor for each
// payload×concurrency cell where they were measured.
func printRatios(w io.Writer, results []result, subject string, sizes, concs []int) {
	byKey := byCell(results)
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
			s, ok := byKey[cellKey{subject, size, c}]
			if !ok {
				continue
			}
			vsGRPC, p99, vsFloor := "n/a", "n/a", "n/a"
			if g, ok := byKey[cellKey{"grpc", size, c}]; ok {
				vsGRPC = fmt.Sprintf("%.2fx", s.callsPerSec/g.callsPerSec)
				p99 = fmt.Sprintf("%s vs %s (%.2fx)", fmtDur(s.p99), fmtDur(g.p99), float64(s.p99)/float64(max(g.p99, 1)))
			}
			if f, ok := byKey[cellKey{"floor", size, c}]; ok {
				vsFloor = fmt.Sprintf("%.2fx", s.callsPerSec/f.callsPerSec)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", sizeLabel(size), c, vsGRPC, p99, vsFloor)
		}
	}
	fmt.Fprintln(w)
}

func printNotes(w io.Writer, results []result, notes []string) {
	if len(notes) == 0 && len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w, "- allocs/call and B/call count client and server together (same process); p50/p99/p99.9 are per-call round-trip latencies seen by the callers; CPU µs/call is user+system CPU time (getrusage) over calls, client and server together when they share the process.")
	for _, r := range results {
		if r.dropped > 0 {
			fmt.Fprintf(w, "- %s %s c%d: %d of %d latencies not recorded (sample slices full); percentiles cover the rest.\n",
				r.system, sizeLabel(r.payload), r.conc, r.dropped, r.calls)
		}
	}
	fmt.Fprintln(w)
}

// printTransportResults is printResults with the transport in its own
// column.
func printTransportResults(w io.Writer, results []result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "| system | transport | payload | concurrency | calls/s | p50 | p99 | p99.9 | "+cpuHead(results)+" | allocs/call | B/call |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		sys, _, _ := strings.Cut(r.system, "-")
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s | %s | %s | %.1f | %.0f |\n",
			sys, r.transport, sizeLabel(r.payload), r.conc, fmtRate(r.callsPerSec), fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.p999), fmtCPU(r), r.allocsPerCall, r.bytesPerCall)
	}
	fmt.Fprintln(w)
}

// printTransportRatios tables, per payload × concurrency, what each
// transport costs against plain TCP (subject's and grpc's) and subject's
// calls/s against grpc's over the same transport.
func printTransportRatios(w io.Writer, results []result, subject string, sizes, concs []int) {
	byKey := byCell(results) // systems named system-transport ("arbor-tls")
	measured := map[string]bool{}
	for _, r := range results {
		measured[r.system] = true
	}
	type col struct {
		head     string
		num, den string // system-transport names
	}
	var cols []col
	sysList := []string{subject}
	if subject != "grpc" {
		sysList = append(sysList, "grpc")
	}
	for _, sys := range sysList {
		if !measured[sys+"-tcp"] {
			continue
		}
		for _, t := range []string{"tls", "quic", "unix"} {
			if measured[sys+"-"+t] {
				cols = append(cols, col{fmt.Sprintf("%s %s/tcp", sys, t), sys + "-" + t, sys + "-tcp"})
			}
		}
	}
	if subject != "grpc" {
		for _, t := range []string{"tcp", "tls", "quic", "unix"} {
			if measured[subject+"-"+t] && measured["grpc-"+t] {
				cols = append(cols, col{fmt.Sprintf("%s/grpc %s", subject, t), subject + "-" + t, "grpc-" + t})
			}
		}
	}
	// The QUIC bars (#14) side by side, and how far the UDP floor itself
	// is from them: a bar the floor misses cannot be met over QUIC.
	for _, p := range [][2]string{
		{subject + "-quic", subject + "-tls"},
		{subject + "-quic", "grpc-tls"},
		{subject + "-quic", "floor-udp"},
		{"floor-udp", "grpc-tls"},
		{subject + "-tcp", "floor-tcp"},
	} {
		if p[0] != p[1] && measured[p[0]] && measured[p[1]] {
			cols = append(cols, col{strings.Replace(p[0], "-", " ", 1) + "/" + strings.Replace(p[1], "-", " ", 1), p[0], p[1]})
		}
	}
	if len(cols) == 0 {
		fmt.Fprintf(w, "Ratios: nothing to compare (need %[1]s-tcp beside another %[1]s transport, or %[1]s and grpc over one transport).\n\n", subject)
		return
	}
	fmt.Fprint(w, "| payload | concurrency |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s calls/s |", c.head)
	}
	fmt.Fprint(w, "\n|---:|---:|")
	for range cols {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, size := range sizes {
		for _, c := range concs {
			fmt.Fprintf(w, "| %s | %d |", sizeLabel(size), c)
			for _, col := range cols {
				n, ok1 := byKey[cellKey{col.num, size, c}]
				d, ok2 := byKey[cellKey{col.den, size, c}]
				if ok1 && ok2 && d.callsPerSec > 0 {
					fmt.Fprintf(w, " %.2fx |", n.callsPerSec/d.callsPerSec)
				} else {
					fmt.Fprint(w, " n/a |")
				}
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
}

func printStreamResults(w io.Writer, results []streamResult) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "| system | payload | lanes | msgs/s | MiB/s each way | allocs/msg | B/msg |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.1f | %.2f | %.0f |\n",
			r.system, sizeLabel(r.payload), r.lanes, fmtRate(r.msgsPerSec), r.msgsPerSec*float64(r.payload)/(1<<20), r.allocsPerMsg, r.bytesPerMsg)
	}
	fmt.Fprintln(w)
}

// printStreamRatios tables subject against grpc per payload × lanes and
// says whether subject's messages/s reach bar times grpc's.
func printStreamRatios(w io.Writer, results []streamResult, subject string, sizes, lanes []int, bar float64) {
	type key struct {
		sys         string
		size, lanes int
	}
	byKey := map[key]streamResult{}
	for _, r := range results {
		byKey[key{r.system, r.payload, r.lanes}] = r
	}
	fmt.Fprintf(w, "| payload | lanes | %[1]s/grpc msgs/s | %[1]s vs grpc allocs/msg |\n", subject)
	fmt.Fprintln(w, "|---:|---:|---:|---:|")
	var (
		cells, met int
		worst      = -1.0
		worstAt    string
	)
	for _, size := range sizes {
		for _, l := range lanes {
			s, ok1 := byKey[key{subject, size, l}]
			g, ok2 := byKey[key{"grpc", size, l}]
			if !ok1 || !ok2 || g.msgsPerSec <= 0 {
				continue
			}
			ratio := s.msgsPerSec / g.msgsPerSec
			cells++
			if ratio >= bar {
				met++
			}
			if worst < 0 || ratio < worst {
				worst, worstAt = ratio, fmt.Sprintf("%s, lanes %d", sizeLabel(size), l)
			}
			fmt.Fprintf(w, "| %s | %d | %.2fx | %.2f vs %.2f |\n", sizeLabel(size), l, ratio, s.allocsPerMsg, g.allocsPerMsg)
		}
	}
	fmt.Fprintln(w)
	if cells == 0 {
		fmt.Fprintf(w, "Bar (%s >= %.2fx grpc msgs/s): not assessed; %s and grpc were not both measured.\n\n", subject, bar, subject)
		return
	}
	verdict := "met"
	if met < cells {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "Bar (%s >= %.2fx grpc msgs/s in every cell): %s; reached in %d of %d cells, lowest %.2fx (%s).\n\n", subject, bar, verdict, met, cells, worst, worstAt)
}

func printStreamNotes(w io.Writer, notes []string) {
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w, "- one stream per lane, all on one client connection; per lane one goroutine sends the same payload back to back (blocking only on flow control) while another receives and checks the echoes; msgs/s counts echoes received, all lanes together.")
	fmt.Fprintln(w, "- allocs/msg and B/msg count client and server together (same process), per echoed message (one message each way).")
	fmt.Fprintln(w, "- after each cell the senders half-close and every lane is drained to io.EOF; each lane must get back exactly as many echoes as it sent.")
	fmt.Fprintln(w)
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
