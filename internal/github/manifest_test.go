package github

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// TestConvertManifestCodeNamesTheRefusalNotTheCode: a code GitHub does not
// know (spent, expired, mistyped) fails with GitHub's status, and the
// error does not repeat the code, which is a credential until used.
func TestConvertManifestCodeNamesTheRefusalNotTheCode(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	const code = "0123456789abcdef0123456789abcdef01234567"
	_, err := ConvertManifestCode(context.Background(), http.DefaultClient, e.url+"/", code)
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") || strings.Contains(err.Error(), code) {
		t.Fatalf("an unknown code: %v; want GitHub's 404 without the code", err)
	}
	if _, err := ConvertManifestCode(context.Background(), http.DefaultClient, "api.github.com", code); err == nil || !strings.Contains(err.Error(), `"api.github.com" is not an absolute URL`) {
		t.Errorf("a relative API URL: %v", err)
	}
}
