//go:build !noarbor

package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The tool section runs `arbor serve` and `arbor bench` (built from the
// main module here) beside this harness's client, and reports both.
func TestToolSection(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("the tool section pins the server and the clients to two cores")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Fatalf("taskset (util-linux) is needed: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "arbor")
	build := exec.Command("go", "build", "-o", bin, "./cmd/arbor")
	build.Dir = ".." // the main module
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building arbor: %v\n%s", err, out)
	}
	var buf bytes.Buffer
	if err := runTool(&buf, toolConfig{bin: bin, dur: 300 * time.Millisecond, warm: 50 * time.Millisecond, rounds: 2, conc: 4, size: 64}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 1 | ", "| 2 | ", "arbor bench ÷ bench/, median **"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}
