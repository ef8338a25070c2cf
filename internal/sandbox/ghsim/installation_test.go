package ghsim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestInstallationStates: what the App meets when an account's owner takes
// a repository out of the installation, suspends the App, or uninstalls it.
func TestInstallationStates(t *testing.T) {
	s := newSim(t, Options{})
	s.seed()
	tok := "token " + s.token()
	pull := "/repos/" + testRepo + "/pulls/1"

	if resp, body := s.do("GET", pull, tok, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("installed: %d %s", resp.StatusCode, body)
	}
	must(t, s.SetInstalled(testRepo, false))
	for _, path := range []string{pull, "/repos/" + testRepo + "/contents/README.md"} {
		if resp, body := s.do("GET", path, tok, nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "Not Found") {
			t.Errorf("GET %s of a repository out of the installation: %d %s, want 404 Not Found", path, resp.StatusCode, body)
		}
	}
	if st := s.Snapshot(); st.Repos[0].Installed {
		t.Error("state says the repository is still installed")
	}
	must(t, s.SetInstalled(testRepo, true))
	if resp, body := s.do("GET", pull, tok, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("installed again: %d %s", resp.StatusCode, body)
	}

	tokenStatus := func() (int, string) {
		now := time.Now()
		jwt := signJWT(t, appKey(), s.AppID(), now.Add(-30*time.Second), now.Add(90*time.Second))
		resp, body := s.do("POST", fmt.Sprintf("/app/installations/%d/access_tokens", s.InstallationID()), "Bearer "+jwt, nil)
		return resp.StatusCode, string(body)
	}
	must(t, s.SetInstallationState(InstallationSuspended))
	if code, body := tokenStatus(); code != http.StatusForbidden || !strings.Contains(body, "This installation has been suspended") {
		t.Errorf("token of a suspended installation: %d %s, want 403 This installation has been suspended", code, body)
	}
	if resp, body := s.do("GET", pull, tok, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a token issued before the suspension: %d %s, want 401", resp.StatusCode, body)
	}
	must(t, s.SetInstallationState(InstallationDeleted))
	if code, body := tokenStatus(); code != http.StatusNotFound {
		t.Errorf("token of a deleted installation: %d %s, want 404", code, body)
	}
	if err := s.SetInstallationState("gone"); err == nil {
		t.Error("an unknown state was accepted")
	}
	must(t, s.SetInstallationState(InstallationActive))
	if code, body := tokenStatus(); code != http.StatusCreated {
		t.Errorf("token once active again: %d %s", code, body)
	}
}
