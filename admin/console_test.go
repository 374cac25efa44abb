package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

// chromiumPath finds Debian's chromium (the Makefile's tools target
// installs it when missing).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ARBOR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium in PATH: the console test needs a real browser (make tools installs Debian's chromium; or set ARBOR_CHROMIUM)")
	return ""
}

// browser starts headless chromium with a fresh profile; the returned
// context drives one tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(testContext(t), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// eval runs JavaScript in the page and decodes its result into out.
func eval[T any](t *testing.T, ctx context.Context, js string, out *T) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	*out = v
}

// waitJS polls a JavaScript condition until it is true.
func waitJS(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ok bool
		eval(t, ctx, js, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s)", what, js)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium: a slow
// 3-level tree's nodes go from running to finished on the page without a
// reload, the catalog's counts rise after calls, and a function id and
// error messages full of markup show as text. It saves a screenshot
// (ARBOR_CONSOLE_SCREENSHOT names the file; the README shows one).
func TestConsoleInBrowser(t *testing.T) {
	r := newRig(t, "console-token")
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(r.url+"/?token=console-token")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the first figures", `window.arborConsole && window.arborConsole.stats > 0`)
	var loadedAt float64
	eval(t, ctx, `window.arborConsole.loadedAt`, &loadedAt)
	cctx := testContext(t)

	// A slow 3-level tree: slow3(slow2(slow1(400))), each level 400ms.
	id, err := tree.Submit(cctx, r.cl, request.New("slow3", request.New("slow2", request.New("slow1", 400)).WithTitle("middle")).WithTitle("slow tree"))
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"request", "args.tuple_element0", "args.tuple_element0.args.tuple_element0"}
	seen := map[string][]string{}
	js := fmt.Sprintf(`(() => { const o = {}; for (const li of document.querySelectorAll('li.node[data-tree=%q]')) o[li.dataset.path] = li.dataset.state; return JSON.stringify(o); })()`, id)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var raw string
		eval(t, ctx, js, &raw)
		var states map[string]string
		json.Unmarshal([]byte(raw), &states)
		for _, p := range paths {
			if s, ok := states[p]; ok {
				if l := seen[p]; len(l) == 0 || l[len(l)-1] != s {
					seen[p] = append(seen[p], s)
				}
			}
		}
		done := true
		for _, p := range paths {
			if states[p] != "finished" {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tree did not finish on the page; states seen: %v", seen)
		}
		time.Sleep(15 * time.Millisecond)
	}
	// What the page drew, in order (its own record, so a slow poll on a
	// busy machine cannot miss a state), must take every node from
	// running to finished; the polls above saw the DOM change too.
	var shown [][]string
	eval(t, ctx, `window.arborConsole.shown`, &shown)
	drawn := map[string][]string{}
	for _, s := range shown {
		if s[0] == id {
			drawn[s[1]] = append(drawn[s[1]], s[2])
		}
	}
	for _, p := range paths {
		states := drawn[p]
		ri := indexOf(states, "running")
		if ri < 0 || len(states) == 0 || states[len(states)-1] != "finished" {
			t.Errorf("%s was drawn as %v (polls saw %v); want running, then finished", p, states, seen[p])
		}
	}
	if len(seen[paths[0]]) < 2 {
		t.Errorf("the polls saw the root only as %v: the page did not change while watched", seen[paths[0]])
	}
	var loadedAfter float64
	eval(t, ctx, `window.arborConsole.loadedAt`, &loadedAfter)
	if loadedAfter != loadedAt {
		t.Error("the page was reloaded")
	}
	var treeEvents int
	eval(t, ctx, `window.arborConsole.events`, &treeEvents)
	if treeEvents < 6 {
		t.Errorf("the page got %d tree events; the nodes changed by push, so want at least 6", treeEvents)
	}

	// Catalog counts rise after calls.
	countJS := `(() => { for (const tr of document.querySelectorAll('#catalog tbody tr')) if (tr.dataset.fn === "echo") return Number(tr.dataset.calls); return -1; })()`
	var before int
	eval(t, ctx, countJS, &before)
	if before < 0 {
		t.Fatal("echo is not in the catalog on the page")
	}
	for range 5 {
		if _, err := arbor.Call1[[]byte](cctx, r.cl, "echo", []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	waitJS(t, ctx, "echo's count to rise by 5", fmt.Sprintf(`%s >= %d`, countJS, before+5))

	// Markup in a function id, an error and a log line shows as text.
	if _, err := arbor.Call1[int](cctx, r.cl, xssID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := arbor.Call1[int](cctx, r.cl, "fail", 1); err == nil {
		t.Fatal("fail succeeded")
	}
	bad, err := tree.Submit(cctx, r.cl, request.New("fail", 1).WithTitle(xssID))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the failed tree", fmt.Sprintf(`(() => { const li = document.querySelector('li.node[data-tree=%q]'); return !!li && li.dataset.state === "failed"; })()`, bad))
	waitJS(t, ctx, "the xss function's call", fmt.Sprintf(`(() => { for (const tr of document.querySelectorAll('#catalog tbody tr')) if (tr.dataset.fn === %s) return Number(tr.dataset.calls) >= 1; return false; })()`, strconv.Quote(xssID)))
	waitJS(t, ctx, "the log line", `document.getElementById("logs").textContent.includes("fail was called")`)
	var res struct {
		XSS         *int   `json:"xss"`
		Injected    int    `json:"injected"`
		CatalogText string `json:"catalogText"`
		TreeTitle   string `json:"treeTitle"`
		TreeErr     string `json:"treeErr"`
		LogText     string `json:"logText"`
	}
	eval(t, ctx, fmt.Sprintf(`(() => {
		const row = [...document.querySelectorAll('#catalog tbody tr')].find(tr => tr.dataset.fn === %s);
		const li = document.querySelector('li.node[data-tree=%q]');
		return {
			xss: window.__xss === undefined ? null : window.__xss,
			injected: document.querySelectorAll('main script, main img, main b').length,
			catalogText: row ? row.cells[0].textContent : "",
			treeTitle: li ? li.querySelector('.fn').textContent : "",
			treeErr: li ? li.querySelector('.err').textContent : "",
			logText: document.getElementById("logs").textContent,
		};
	})()`, strconv.Quote(xssID), bad), &res)
	if res.XSS != nil || res.Injected != 0 {
		t.Errorf("markup from the server ran or was parsed: window.__xss = %v, %d injected elements", res.XSS, res.Injected)
	}
	if res.CatalogText != xssID {
		t.Errorf("the catalog shows %q, want the id as text %q", res.CatalogText, xssID)
	}
	if res.TreeTitle != xssID || !strings.Contains(res.TreeErr, xssError) {
		t.Errorf("the failed tree shows title %q, error %q; want both as text", res.TreeTitle, res.TreeErr)
	}
	if !strings.Contains(res.LogText, xssError) {
		t.Errorf("the log does not show the message as text: %q", res.LogText)
	}

	// Some cached trees, so the cache tier shows a hit ratio.
	for i := range 3 {
		for range 2 {
			if _, err := tree.Resolve[int](cctx, r.cl, request.New("add+mem", request.New("add+mem", i, 1), 2)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitJS(t, ctx, "the cache's hits", `document.querySelector('#caches tbody tr[data-tier="memory"]') !== null && document.querySelector('#caches tbody tr[data-tier="memory"]').textContent.includes("%")`)

	// The screenshot, with the page as a person sees it.
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("ARBOR_CONSOLE_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "console.png")
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 10000 {
		t.Errorf("the screenshot is %d bytes: the page looks empty", len(png))
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return -1
}
