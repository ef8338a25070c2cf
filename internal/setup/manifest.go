package setup

import "maps"

// What the App asks GitHub for. README's "Running it for real" lists the
// same permissions and events for people registering the App by hand;
// TestREADMEListsWhatTheManifestAsks keeps the two in step.

// repositoryPermissions are the App's permissions on the repositories it
// is installed on, by the manifest's names, and why the bot needs each.
func repositoryPermissions() map[string]string {
	return map[string]string{
		"checks":        "write", // check runs deploybot/preview, /production, the tests'
		"pull_requests": "write", // reads pull requests; the PR's Deployment button
		"issues":        "write", // the status comment and reactions on PR comments
		"deployments":   "write", // preview and production Deployments
		"contents":      "read",  // the pipeline file, the source tarball, comparisons
		"metadata":      "read",  // every App has it
	}
}

// teamPermissions are asked for only when PR commands are allowed to
// teams (commands.allow/only naming "@org/team-slug"): reading a team's
// members is an organization permission.
func teamPermissions() map[string]string {
	return map[string]string{"members": "read"}
}

// events are the webhooks the App subscribes to. GitHub sends installation
// and installation_repositories to every App; a manifest may not ask for
// them.
func events() []string {
	return []string{"pull_request", "issue_comment", "check_run", "check_suite", "push"}
}

// Manifest is GitHub's App manifest: docs.github.com/apps/sharing-github-apps/
// registering-a-github-app-from-a-manifest ("GitHub App Manifest parameters").
type Manifest struct {
	Name           string         `json:"name"`
	URL            string         `json:"url"`
	Description    string         `json:"description"`
	HookAttributes HookAttributes `json:"hook_attributes"`
	RedirectURL    string         `json:"redirect_url"`
	// CallbackURLs are where GitHub may send people back after they sign
	// in to the web interface with the App (its OAuth client).
	CallbackURLs       []string          `json:"callback_urls"`
	Public             bool              `json:"public"`
	DefaultPermissions map[string]string `json:"default_permissions"`
	DefaultEvents      []string          `json:"default_events"`
}

// HookAttributes is where GitHub delivers the App's webhooks.
type HookAttributes struct {
	URL    string `json:"url"`
	Active bool   `json:"active"`
}

// newManifest is the App deploybot needs, receiving webhooks at hookURL.
// The App is private (public: false): only its owner's account can install
// it, which is what a self-hosted bot wants.
func newManifest(name, homepage, hookURL, redirectURL, loginCallback string, teams bool) Manifest {
	perms := repositoryPermissions()
	if teams {
		maps.Copy(perms, teamPermissions())
	}
	return Manifest{
		Name:               name,
		URL:                homepage,
		Description:        "deploybot: preview environments for pull requests and production deploys on merge.",
		HookAttributes:     HookAttributes{URL: hookURL, Active: true},
		RedirectURL:        redirectURL,
		CallbackURLs:       []string{loginCallback},
		Public:             false,
		DefaultPermissions: perms,
		DefaultEvents:      events(),
	}
}
