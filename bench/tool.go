package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The tool section: `arbor bench` beside this harness on the same cell,
// against the same `arbor serve` process (#13's bar: the tool reports
// within 10 % of bench/). The server runs pinned to core 1 with
// GOMAXPROCS 1; each round measures this harness's Arbor client (this
// process pinned to core 0, GOMAXPROCS 1), then `arbor bench` under the
// same pinning, so the only difference is the client.

type toolConfig struct {
	bin       string // the arbor binary
	dur, warm time.Duration
	rounds    int
	conc      int
	size      int
}

func runTool(w io.Writer, tc toolConfig) error {
	fmt.Fprintln(w, "## `arbor bench` vs bench/ against one `arbor serve`")
	fmt.Fprintln(w)
	arbor, ok := remoteRegistry["arbor"]
	if !ok {
		fmt.Fprintln(w, "Skipped: built without Arbor (-tags noarbor).")
		fmt.Fprintln(w)
		return nil
	}
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("tool: needs two cores (one for the server, one for the client)")
	}
	restore, err := pinCore0()
	if err != nil {
		return fmt.Errorf("tool: pinning to core 0: %w", err)
	}
	defer restore()
	srv := exec.Command("taskset", "-c", "1", tc.bin, "serve", "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	srv.Env = append(os.Environ(), "GOMAXPROCS=1")
	out, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return fmt.Errorf("tool: starting %s serve: %w", tc.bin, err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	sc := bufio.NewScanner(out)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		return fmt.Errorf("tool: %s serve printed no \"listening on ADDR\" line", tc.bin)
	}
	go io.Copy(io.Discard, out)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := arbor.dial(ctx, addr)
	cancel()
	if err != nil {
		return err
	}
	defer r.Close()
	payload := makePayload(tc.size)
	arg, _ := json.Marshal(string(payload)) // the same bytes, as the CLI takes them
	tmp, err := os.MkdirTemp("", "arbor-tool")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	report := filepath.Join(tmp, "r.json")

	var harness, tool, ratios []float64
	for i := range tc.rounds {
		res, err := measure("arbor", r, payload, tc.conc, tc.warm, tc.dur)
		if err != nil {
			return err
		}
		cmd := exec.Command("taskset", "-c", "0", tc.bin, "bench", "-c", fmt.Sprint(tc.conc), "-d", tc.dur.String(),
			"--warmup", tc.warm.String(), "--out", report, addr, "echo", string(arg))
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("tool: arbor bench: %v\n%s", err, msg)
		}
		var rep struct {
			CallsPerSec float64 `json:"calls_per_sec"`
			Errors      uint64  `json:"errors"`
		}
		b, err := os.ReadFile(report)
		if err == nil {
			err = json.Unmarshal(b, &rep)
		}
		if err != nil || rep.Errors > 0 || rep.CallsPerSec == 0 {
			return fmt.Errorf("tool: arbor bench report: %v (%d errors)", err, rep.Errors)
		}
		harness, tool = append(harness, res.callsPerSec), append(tool, rep.CallsPerSec)
		ratios = append(ratios, rep.CallsPerSec/res.callsPerSec)
		fmt.Fprintf(os.Stderr, "tool round %d: bench/ %s, arbor bench %s calls/s (%.2f×)\n", i+1, fmtRate(res.callsPerSec), fmtRate(rep.CallsPerSec), ratios[i])
	}
	fmt.Fprintf(w, "Cell: unary echo of %d bytes, %d callers, one connection; %d interleaved rounds of %v.\n\n", tc.size, tc.conc, tc.rounds, tc.dur)
	fmt.Fprintln(w, "| round | bench/ calls/s | arbor bench calls/s | ratio |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|")
	for i := range ratios {
		fmt.Fprintf(w, "| %d | %s | %s | %.2f× |\n", i+1, fmtRate(harness[i]), fmtRate(tool[i]), ratios[i])
	}
	s := slices.Clone(ratios)
	slices.Sort(s)
	fmt.Fprintf(w, "\narbor bench ÷ bench/, median **%.2f×** (range %.2f–%.2f); bar: within 10 %%.\n\n", s[len(s)/2], s[0], s[len(s)-1])
	fmt.Fprintln(w, "Notes:")
	fmt.Fprintln(w, "- the server is `arbor serve --cache-dir \"\"` under taskset -c 1 with GOMAXPROCS 1; both clients run on core 0 with GOMAXPROCS 1 (this process pins itself; `arbor bench` runs under taskset -c 0), one connection each, the same 64-byte []byte echo.")
	fmt.Fprintln(w)
	return nil
}
