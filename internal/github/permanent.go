package github

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v66/github"
)

// Permanent reports whether err is GitHub saying the App cannot act on the
// repository at all, so that trying the same job again in a minute or an
// hour would meet the same answer; reason says which, for the one log line
// the job ends with. These are:
//
//   - creating the installation's token is refused: 404 (the App was
//     uninstalled from the account), 403 (the installation is suspended),
//     401 (GitHub no longer accepts the App's own key);
//   - 404 for the repository itself, or for a pull request a webhook named
//     (GitHub deletes pull requests only with their repository): the App is
//     not installed on it any more, or it was deleted. GitHub answers 404,
//     not 403, for a repository a token cannot see
//     (docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api).
//
// Everything else stays retryable: any answer that is a rate limit (429,
// 403 with Retry-After, X-RateLimit-Remaining: 0 or GitHub's "rate limit"
// message), a 404 for a file, a check run or a comment (the caller decides
// what a missing one means), and a 401 on an API call, which GitHub also
// gives for a token used within seconds of its creation, before it has
// reached every replica (@octokit/auth-app retries those).
func Permanent(err error) (reason string, ok bool) {
	if err == nil {
		return "", false
	}
	if he, isToken := errors.AsType[*ghinstallation.HTTPError](err); isToken && he.Response != nil {
		resp := he.Response
		msg := peekMessage(resp)
		if rateLimited(resp.StatusCode, resp.Header, msg) {
			return "", false
		}
		what := fmt.Sprintf("GitHub refuses a token for installation %d of the App (%s", he.InstallationID, resp.Status)
		if msg != "" {
			what += ": " + msg
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return what + "): the App was uninstalled", true
		case http.StatusForbidden:
			return what + "): the installation is suspended", true
		case http.StatusUnauthorized:
			return what + "): GitHub no longer accepts the App's private key", true
		}
		return "", false
	}
	if er, isAPI := errors.AsType[*gh.ErrorResponse](err); isAPI && er.Response != nil && er.Response.Request != nil {
		if er.Response.StatusCode != http.StatusNotFound {
			return "", false
		}
		m := repoPath.FindStringSubmatch(er.Response.Request.URL.Path)
		if m == nil {
			return "", false
		}
		return fmt.Sprintf("GitHub answers 404 for %s %s: the App is not installed on repository %s/%s any more, or it was deleted",
			er.Response.Request.Method, strings.TrimPrefix(m[0], "/"), m[1], m[2]), true
	}
	return "", false
}

// repoPath matches a request for a repository or one of its pull requests,
// under any API prefix (/api/v3 on GitHub Enterprise Server).
var repoPath = regexp.MustCompile(`/repos/([^/]+)/([^/]+)(?:/pulls/\d+)?$`)

// rateLimited reports whether an answer is one of GitHub's rate limits:
// those lift by themselves
// (docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api,
// "Rate limit errors").
func rateLimited(status int, h http.Header, msg string) bool {
	switch {
	case status == http.StatusTooManyRequests:
		return true
	case status != http.StatusForbidden:
		return false
	}
	return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0" ||
		strings.Contains(strings.ToLower(msg), "rate limit")
}

// peekMessage reads GitHub's {"message": …} from an error answer that
// nobody else reads (ghinstallation leaves the token answer's body open),
// and leaves the body readable again.
func peekMessage(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Message
}
