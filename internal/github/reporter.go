package github

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/gitref"
	"github.com/revelations-studio/deploybot/internal/retry"
)

// ErrNotFound is matched (errors.Is) by errors for things GitHub says do not
// exist: a file at a ref, a pull request, a comment.
var ErrNotFound = errors.New("not found")

// Reporter reads and writes one repository through an installation client:
// the lookups the bot's decisions need and everything it shows on GitHub.
// It is safe for concurrent use.
type Reporter struct {
	client   *gh.Client
	owner    string
	repo     string
	botLogin string
	download *http.Client
}

// ReporterOption configures a Reporter.
type ReporterOption func(*Reporter)

// WithBotLogin sets the App's bot account ("my-app[bot]"). The status
// comment is then only ever recognised among that account's comments;
// without it, among comments of any bot account. Either way a person who
// pastes the marker into their own comment does not get it edited.
func WithBotLogin(login string) ReporterOption {
	return func(r *Reporter) { r.botLogin = login }
}

// WithDownloadClient sets the client that downloads archives from the URL
// GitHub redirects to (default: a client on http.DefaultTransport). That
// URL carries its own short-lived token, so the client must not add the
// installation token.
func WithDownloadClient(c *http.Client) ReporterOption {
	return func(r *Reporter) { r.download = c }
}

// NewReporter returns a Reporter for owner/repo using client, normally an
// installation client from NewClientCreator.
func NewReporter(client *gh.Client, owner, repo string, opts ...ReporterOption) *Reporter {
	r := &Reporter{client: client, owner: owner, repo: repo, download: &http.Client{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// FullName is "owner/repo".
func (r *Reporter) FullName() string { return r.owner + "/" + r.repo }

// PullRequest is what the bot needs to know about a pull request.
type PullRequest struct {
	Number  int
	Title   string
	State   string // "open" or "closed"
	Draft   bool
	Merged  bool
	Author  string
	HeadSHA string
	HeadRef string
	// HeadRepo is the full name of the repository the head branch lives in;
	// empty when that fork was deleted.
	HeadRepo string
	BaseRef  string
	// Fork reports whether the head branch lives outside this repository:
	// such code must not run with secrets unless a maintainer approved it.
	Fork bool
}

// PullRequest fetches pull request n. The answer is revalidated with its
// ETag, so asking again is cheap and never stale.
func (r *Reporter) PullRequest(ctx context.Context, n int) (PullRequest, error) {
	pr, resp, err := r.client.PullRequests.Get(ctx, r.owner, r.repo, n)
	if err != nil {
		return PullRequest{}, r.wrap(fmt.Sprintf("get pull request #%d", n), resp, err)
	}
	return r.pullRequestOf(pr), nil
}

// Roles a collaborator may have, most powerful first.
const (
	RoleAdmin    = "admin"
	RoleMaintain = "maintain"
	RoleWrite    = "write"
	RoleTriage   = "triage"
	RoleRead     = "read"
	RoleNone     = "none"
)

// CollaboratorRole returns user's role on the repository (role_name: admin,
// maintain, write, triage, read, or a custom role's name). A user GitHub
// does not know has RoleNone.
func (r *Reporter) CollaboratorRole(ctx context.Context, user string) (string, error) {
	if !validLogin(user) {
		// Not a name GitHub gives out: nobody with a role. go-github puts
		// the login into the path as it is.
		return RoleNone, nil
	}
	perm, resp, err := r.client.Repositories.GetPermissionLevel(ctx, r.owner, r.repo, user)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return RoleNone, nil
		}
		return "", r.wrap(fmt.Sprintf("get permission of %q", user), resp, err)
	}
	if role := perm.GetRoleName(); role != "" {
		return role, nil
	}
	// Older GitHub Enterprise Server versions answer only the coarse
	// permission (admin, write, read, none).
	if p := perm.GetPermission(); p != "" {
		return p, nil
	}
	return RoleNone, nil
}

// File returns the content of the file at path as of ref (a branch, tag or
// commit SHA). A missing file is ErrNotFound.
func (r *Reporter) File(ctx context.Context, path, ref string) ([]byte, error) {
	op := fmt.Sprintf("get file %q at %q", path, ref)
	if err := checkRevision(ref); err != nil {
		return nil, fmt.Errorf("github: %s in %s: %w", op, r.FullName(), err)
	}
	fc, dir, resp, err := r.client.Repositories.GetContents(ctx, r.owner, r.repo, path, &gh.RepositoryContentGetOptions{Ref: ref})
	if err != nil {
		return nil, r.wrap(op, resp, err)
	}
	if fc == nil {
		return nil, fmt.Errorf("github: %s in %s: is a directory (%d entries)", op, r.FullName(), len(dir))
	}
	if fc.GetType() != "file" {
		return nil, fmt.Errorf("github: %s in %s: is a %s, not a file", op, r.FullName(), fc.GetType())
	}
	content, err := fc.GetContent()
	if err != nil {
		return nil, fmt.Errorf("github: %s in %s: %w", op, r.FullName(), err)
	}
	return []byte(content), nil
}

// validLogin reports whether user can be a GitHub login: letters, digits
// and hyphens (at most 39), not beginning with a hyphen, or an App's
// "slug[bot]". Logins come from payloads and go into request paths.
func validLogin(user string) bool {
	name, _ := strings.CutSuffix(user, "[bot]")
	if name == "" || len(name) > 39 || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// checkRevision accepts what the pipelines ask GitHub for by name: a full
// commit SHA or a branch name git allows. Anything else would be put into
// a request path or query as something other than a revision.
func checkRevision(ref string) error {
	if gitref.IsSHA(ref) {
		return nil
	}
	return gitref.CheckBranch(ref)
}

// Tarball streams the gzip'd tar of the repository at ref. GitHub answers
// with a redirect to a short-lived download URL, which is followed without
// the installation token. Entries are under one top-level folder
// ("owner-repo-shortsha/"), preceded by a pax global header whose comment
// is the commit SHA. The caller must close the reader.
func (r *Reporter) Tarball(ctx context.Context, ref string) (io.ReadCloser, error) {
	op := fmt.Sprintf("download tarball at %q", ref)
	if err := checkRevision(ref); err != nil {
		return nil, fmt.Errorf("github: %s in %s: %w", op, r.FullName(), err)
	}
	// go-github puts the ref into the path as it is: escape each segment.
	link, resp, err := r.client.Repositories.GetArchiveLink(ctx, r.owner, r.repo, gh.Tarball, &gh.RepositoryContentGetOptions{Ref: gitref.EscapePath(ref)}, 1)
	if err != nil {
		return nil, r.wrap(op, resp, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("github: %s in %s: %w", op, r.FullName(), err)
	}
	dl, err := r.download.Do(req)
	if err != nil {
		// The URL holds a token: report the host only.
		return nil, fmt.Errorf("github: %s in %s: from %s: %w", op, r.FullName(), link.Host, unwrapURLError(err))
	}
	if dl.StatusCode != http.StatusOK {
		_ = dl.Body.Close()
		return nil, fmt.Errorf("github: %s in %s: from %s: %s", op, r.FullName(), link.Host, dl.Status)
	}
	return dl.Body, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// transientError is GitHub's "not now" (5xx, 429) that outlasted the
// client's own retries: retry.Transient reports it, so a pipeline step may
// be tried again a little later.
type transientError struct{ err error }

func (e transientError) Error() string   { return e.err.Error() }
func (e transientError) Unwrap() error   { return e.err }
func (e transientError) Transient() bool { return true }

// notFoundError keeps GitHub's message while matching ErrNotFound.
type notFoundError struct{ err error }

func (e notFoundError) Error() string        { return e.err.Error() }
func (e notFoundError) Unwrap() error        { return e.err }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// wrap names the operation and repository once; a 404 also matches
// ErrNotFound.
func (r *Reporter) wrap(op string, resp *gh.Response, err error) error {
	switch {
	case resp != nil && resp.StatusCode == http.StatusNotFound:
		err = notFoundError{err}
	case resp != nil && retry.TransientStatus(resp.StatusCode):
		err = transientError{err}
	}
	return fmt.Errorf("github: %s in %s: %w", op, r.FullName(), err)
}
