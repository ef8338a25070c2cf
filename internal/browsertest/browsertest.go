// Package browsertest gives end-to-end tests of the web interface a real
// headless Chromium, driven with chromedp.
//
// A test calls New and runs chromedp actions (chromedp.Do, chromedp.Run)
// in the context it returns.
// Where no Chromium is installed the test is skipped, unless
// DEPLOYBOT_REQUIRE_BROWSER is set (CI sets it after installing Debian's
// chromium package): then a missing browser fails the test, so CI can never
// pass by skipping.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// RequireEnv, when set, turns a missing browser into a failure.
const RequireEnv = "DEPLOYBOT_REQUIRE_BROWSER"

// candidates are where Debian and others install Chromium.
var candidates = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Path finds a Chromium executable: $CHROMIUM, then the usual names on
// $PATH. It returns "" when there is none.
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a fresh profile under the test's
// temporary directory and returns a context for chromedp.Run, bounded by
// timeout. The browser ends with the test.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	exe := Path()
	if exe == "" {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("no Chromium found ($CHROMIUM, %v on $PATH) and %s is set: install Debian's chromium package", candidates, RequireEnv)
		}
		t.Skipf("no Chromium found ($CHROMIUM, %v on $PATH): the browser tests need it (apt-get install chromium)", candidates)
	}
	// The flags keep Chromium from reaching out to Google's services: on a
	// closed network those connections fail by the dozen and slow the start.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's own sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return ctx
}

// Screenshot saves a full-page PNG of what ctx shows as name in the test's
// artifact directory (kept under the output directory with go test
// -artifacts, removed after the test otherwise) and returns its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 makes a PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}
