package metrics

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// API is one of the HTTP APIs the bot calls.
type API string

// The APIs whose requests are counted; each is the prefix of its metrics'
// names (deploybot_github_requests_total, …).
const (
	GitHub     API = "github"
	Neon       API = "neon"
	Cloudflare API = "cloudflare"
)

func (a API) name() string {
	return map[API]string{GitHub: "GitHub", Neon: "Neon", Cloudflare: "Cloudflare"}[a]
}

// label is the name of the label that says what a request was for.
func (a API) label() string {
	if a == GitHub {
		return "route"
	}
	return "operation"
}

// classify names what r asks of the API, from a fixed set: the API's
// route class or operation, "other" for anything else.
func (a API) classify(r *http.Request) string {
	switch a {
	case GitHub:
		return GitHubRoute(r.URL.Path)
	case Neon:
		return neonOperations.match(r.Method, r.URL)
	case Cloudflare:
		return cloudflareOperations.match(r.Method, r.URL)
	}
	return "other"
}

// GitHubRoutes are the values of the GitHub requests' route label.
func GitHubRoutes() []string {
	return []string{
		"checks", "comments", "reactions", "issues", "deployments", "pulls", "contents", "git", "compare",
		"collaborators", "repository", "teams", "app", "app_tokens", "installation", "graphql", "rate_limit", "other",
	}
}

// GitHubRoute is the class of a GitHub API path: what part of GitHub a
// request touches, never which repository, pull request or commit. The
// path may carry a prefix (GitHub Enterprise Server's /api/v3, the
// sandbox's /github): the class is read from the first segment GitHub's
// own paths start with.
func GitHubRoute(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		rest := segs[i+1:]
		at := func(j int) string {
			if j < len(rest) {
				return rest[j]
			}
			return ""
		}
		switch s {
		case "graphql":
			return "graphql"
		case "rate_limit":
			return "rate_limit"
		case "installation":
			return "installation"
		case "app":
			if at(0) == "installations" && at(2) == "access_tokens" {
				return "app_tokens"
			}
			return "app"
		case "orgs":
			if at(1) == "teams" {
				return "teams"
			}
			return "other"
		case "repos":
			return repoRoute(rest)
		}
	}
	return "other"
}

// repoRoute classes /repos/{owner}/{repo}/… by what follows the
// repository (rest starts at the owner).
func repoRoute(rest []string) string {
	if len(rest) < 2 {
		return "other"
	}
	if len(rest) == 2 {
		return "repository"
	}
	has := func(s string) bool {
		for _, r := range rest[3:] {
			if r == s {
				return true
			}
		}
		return false
	}
	switch rest[2] {
	case "check-runs", "check-suites":
		return "checks"
	case "commits":
		if has("check-runs") || has("check-suites") || has("status") || has("statuses") {
			return "checks"
		}
		return "git"
	case "issues":
		switch {
		case has("reactions"):
			return "reactions"
		case has("comments") || (len(rest) > 3 && rest[3] == "comments"):
			return "comments"
		}
		return "issues"
	case "deployments":
		return "deployments"
	case "pulls":
		return "pulls"
	case "contents", "tarball", "zipball", "readme":
		return "contents"
	case "git", "branches":
		return "git"
	case "compare":
		return "compare"
	case "collaborators":
		return "collaborators"
	}
	return "other"
}

// operations names the requests of an API by ServeMux patterns, matched
// on the path from the first segment of the API's own paths (after the
// base URL's /api/v2 or /client/v4).
type operations struct {
	starts []string // the first segments of the API's paths
	mux    *http.ServeMux
	names  map[string]string // pattern → operation
}

func newOperations(starts []string, names map[string]string) *operations {
	o := &operations{starts: starts, mux: http.NewServeMux(), names: names}
	for pattern := range names {
		o.mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	}
	return o
}

// Names are the values the operation label takes.
func (o *operations) Names() []string {
	out := []string{"other"}
	for _, n := range o.names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func (o *operations) match(method string, u *url.URL) string {
	path := u.EscapedPath()
	from := -1
	for _, s := range o.starts {
		if i := strings.Index(path, "/"+s+"/"); i >= 0 && (from < 0 || i < from) {
			from = i
		}
	}
	if from < 0 {
		return "other"
	}
	rel, err := url.Parse(path[from:])
	if err != nil {
		return "other"
	}
	_, pattern := o.mux.Handler(&http.Request{Method: method, URL: rel, Host: u.Host})
	if name, ok := o.names[pattern]; ok {
		return name
	}
	return "other"
}

// NeonOperation names a Neon API v2 request (neon.Client's calls and the
// rest of the branch, endpoint and operation API), from its method and
// path; "other" for anything else.
func NeonOperation(method, path string) string {
	return neonOperations.match(method, &url.URL{Path: path})
}

// CloudflareOperation names a Cloudflare API v4 request (the Workers,
// custom domain, DNS record and route calls the bot makes); "other" for
// anything else.
func CloudflareOperation(method, path string) string {
	return cloudflareOperations.match(method, &url.URL{Path: path})
}

// NeonOperations and CloudflareOperations are the values of their
// requests' operation label.
func NeonOperations() []string       { return neonOperations.Names() }
func CloudflareOperations() []string { return cloudflareOperations.Names() }

// The operation tables, built once and only read. The patterns are the
// paths of the official OpenAPI descriptions (fixtures/openapi) the
// simulators serve.
var neonOperations = newOperations([]string{"projects"}, map[string]string{
	"GET /projects/{project}":                                                "get_project",
	"GET /projects/{project}/branches":                                       "list_branches",
	"POST /projects/{project}/branches":                                      "create_branch",
	"GET /projects/{project}/branches/{branch}":                              "get_branch",
	"PATCH /projects/{project}/branches/{branch}":                            "update_branch",
	"DELETE /projects/{project}/branches/{branch}":                           "delete_branch",
	"POST /projects/{project}/branches/{branch}/restore":                     "restore_branch",
	"GET /projects/{project}/branches/{branch}/endpoints":                    "list_branch_endpoints",
	"GET /projects/{project}/branches/{branch}/databases":                    "list_databases",
	"GET /projects/{project}/branches/{branch}/roles":                        "list_roles",
	"POST /projects/{project}/branches/{branch}/roles/{role}/reset_password": "reset_role_password",
	"GET /projects/{project}/branches/{branch}/roles/{role}/reveal_password": "reveal_role_password",
	"GET /projects/{project}/endpoints":                                      "list_endpoints",
	"POST /projects/{project}/endpoints":                                     "create_endpoint",
	"GET /projects/{project}/endpoints/{endpoint}":                           "get_endpoint",
	"DELETE /projects/{project}/endpoints/{endpoint}":                        "delete_endpoint",
	"GET /projects/{project}/operations":                                     "list_operations",
	"GET /projects/{project}/operations/{operation}":                         "get_operation",
	"GET /projects/{project}/connection_uri":                                 "get_connection_uri",
})

var cloudflareOperations = newOperations([]string{"accounts", "zones"}, map[string]string{
	"GET /accounts/{account}/workers/scripts":                                 "list_scripts",
	"PUT /accounts/{account}/workers/scripts/{script}":                        "upload_script",
	"GET /accounts/{account}/workers/scripts/{script}":                        "get_script",
	"DELETE /accounts/{account}/workers/scripts/{script}":                     "delete_script",
	"GET /accounts/{account}/workers/scripts/{script}/versions":               "list_versions",
	"GET /accounts/{account}/workers/scripts/{script}/versions/{version}":     "get_version",
	"GET /accounts/{account}/workers/scripts/{script}/deployments":            "list_deployments",
	"POST /accounts/{account}/workers/scripts/{script}/deployments":           "create_deployment",
	"PUT /accounts/{account}/workers/scripts/{script}/secrets":                "put_secret",
	"GET /accounts/{account}/workers/scripts/{script}/secrets":                "list_secrets",
	"GET /accounts/{account}/workers/scripts/{script}/secrets/{secret}":       "get_secret",
	"DELETE /accounts/{account}/workers/scripts/{script}/secrets/{secret}":    "delete_secret",
	"POST /accounts/{account}/workers/scripts/{script}/assets-upload-session": "assets_upload_session",
	"POST /accounts/{account}/workers/assets/upload":                          "upload_assets",
	"GET /accounts/{account}/workers/domains":                                 "list_custom_domains",
	"PUT /accounts/{account}/workers/domains":                                 "attach_custom_domain",
	"GET /accounts/{account}/workers/domains/{domain}":                        "get_custom_domain",
	"DELETE /accounts/{account}/workers/domains/{domain}":                     "detach_custom_domain",
	"GET /zones/{zone}/dns_records":                                           "list_dns_records",
	"POST /zones/{zone}/dns_records":                                          "create_dns_record",
	"GET /zones/{zone}/dns_records/{record}":                                  "get_dns_record",
	"PUT /zones/{zone}/dns_records/{record}":                                  "update_dns_record",
	"PATCH /zones/{zone}/dns_records/{record}":                                "update_dns_record",
	"DELETE /zones/{zone}/dns_records/{record}":                               "delete_dns_record",
	"GET /zones/{zone}/workers/routes":                                        "list_routes",
	"POST /zones/{zone}/workers/routes":                                       "create_route",
	"GET /zones/{zone}/workers/routes/{route}":                                "get_route",
	"PUT /zones/{zone}/workers/routes/{route}":                                "update_route",
	"DELETE /zones/{zone}/workers/routes/{route}":                             "delete_route",
})
