package ghsim

import (
	"fmt"
	"net/http"
)

// InstallationState is what became of the App's one installation: on GitHub
// an account's owner can suspend the App or uninstall it, and the App then
// cannot act there any more. SetInstallationState lets a test (or a person
// on `bot sandbox`) do the same.
type InstallationState string

const (
	// InstallationActive is the default: tokens are issued and work.
	InstallationActive InstallationState = "active"
	// InstallationSuspended: creating a token is refused with 403 "This
	// installation has been suspended", and the tokens already issued no
	// longer work (401).
	InstallationSuspended InstallationState = "suspended"
	// InstallationDeleted: the App was uninstalled from the account;
	// creating a token is 404, tokens already issued no longer work (401).
	InstallationDeleted InstallationState = "deleted"
)

// SetInstallationState suspends, deletes or restores the App's
// installation. Leaving the active state revokes every token issued.
func (s *Server) SetInstallationState(st InstallationState) error {
	switch st {
	case InstallationActive, InstallationSuspended, InstallationDeleted:
	default:
		return fmt.Errorf("ghsim: installation state %q: want %q, %q or %q", st, InstallationActive, InstallationSuspended, InstallationDeleted)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.installation = st
	if st != InstallationActive {
		clear(s.tokens)
	}
	return nil
}

// SetInstalled adds repoName to the installation's repositories or removes
// it ("Only select repositories" in the installation's settings). The
// installation's tokens then answer 404 for everything in a repository it
// does not cover, as GitHub does for a repository a token cannot see.
func (s *Server) SetInstalled(repoName string, installed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return err
	}
	rp.uninstalled = !installed
	return nil
}

// installationRefusal is GitHub's answer to a token request for an
// installation that is not active; nil when it is. Callers hold s.mu.
func (s *Server) installationRefusal(doc string) *reply {
	var rep reply
	switch s.installation {
	case InstallationSuspended:
		rep = fail(http.StatusForbidden, "This installation has been suspended", doc)
	case InstallationDeleted:
		rep = fail(http.StatusNotFound, "Not Found", doc)
	default:
		return nil
	}
	return &rep
}
