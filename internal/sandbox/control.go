package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/revelations-studio/deploybot/internal/sandbox/edge"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

// The control endpoints let a person (or a script) trying the bot against a
// running `bot sandbox` do what the tests do through the Go API: make an
// API fail or slow down, make a hostname unhealthy, and act on the
// simulated GitHub as a person would on github.com, with the webhooks
// GitHub would send delivered to the bot (repos.go). JSON in, JSON out;
// a malformed body or an unknown key is a 400 naming what is wrong.
//
//	PUT    /faults/{service}   a JSON list of rules for github, neon or cloudflare (replaces them)
//	DELETE /faults/{service}   no more faults
//	PUT    /health/{hostname}  how the edge answers that hostname's health checks
//	DELETE /health/{hostname}  back to the default health
//
//	PUT    /hooks              {"url": "http://127.0.0.1:8080/api/github/hook"}: where webhooks go
//	GET    /hooks              the URL registered
//	POST   /repos              {"repo": "acme/shop", "sample": true} or {"repo": …, "dir": "/path"}
//	                           [, "default_branch": "main"]: a repository the App is installed on
//	POST   /repos/{owner}/{name}/pulls   {"head": "feature/x", "files": {"path": "content"} and/or
//	                           "dir": "/path" [, "base", "title", "message", "fork", "draft"]}:
//	                           commit the files on head, open the PR; delivers push and pull_request opened
//	POST   /repos/{owner}/{name}/pulls/{n}/commits  {"files": …, "dir": … [, "message"]}: a new head;
//	                           delivers push and pull_request synchronize
//	POST   /repos/{owner}/{name}/pulls/{n}/close    {"merge": true|false}: delivers pull_request
//	                           closed (and, merged, the push to the base branch)
//	POST   /repos/{owner}/{name}/pulls/{n}/comments {"user": "alice", "body": "/redeploy"}:
//	                           delivers issue_comment created
//	PUT    /repos/{owner}/{name}/collaborators/{user}  {"permission": "write"} (admin, maintain,
//	                           write, triage, read; "none" removes it); nothing is delivered
//	PUT    /repos/{owner}/{name}/installation          {"installed": false}: the installation no
//	                           longer covers the repository (its API answers 404)
//	PUT    /installation       {"state": "suspended"|"deleted"|"active"}
//	POST   /deliveries/{id}/redeliver  the same delivery again (same X-GitHub-Delivery)
//
// The endpoints that deliver answer with the repository, the pull request's
// number, the new commit's SHA and each delivery: its id, event, action,
// the bot's status code and the start of its answer. What they deliver and
// everything the bot did is in GET /state.
//
// A rule's "path" is a prefix of the path as the simulated API sees it:
// "/repos/…" for github, "/api/v2/…" for neon, "/client/v4/…" for
// cloudflare. For example, a fifth of Neon's answers failing with 503:
//
//	curl -X PUT localhost:8900/faults/neon -d '[{"rate":0.2,"status":503}]'

// faultRule is fault.Rule as JSON, durations written like "200ms".
type faultRule struct {
	Method     string   `json:"method"`
	Path       string   `json:"path"`
	Latency    duration `json:"latency"`
	Rate       float64  `json:"rate"`
	Times      int      `json:"times"`
	Status     int      `json:"status"`
	RetryAfter duration `json:"retry_after"`
	Reset      bool     `json:"reset"`
	AfterServe bool     `json:"after_serve"`
}

// health is edge.Health as JSON.
type health struct {
	Status               int      `json:"status"`
	HealthyAfterRequests int      `json:"healthy_after_requests"`
	HealthyAfter         duration `json:"healthy_after"`
	Never                bool     `json:"never"`
	FailStatus           int      `json:"fail_status"`
}

type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"200ms\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

func (s *Sandbox) injector(service string) *fault.Injector {
	switch service {
	case "github":
		return s.GitHub.Faults()
	case "neon":
		return s.Neon.Faults()
	case "cloudflare":
		return s.Cloudflare.Faults()
	}
	return nil
}

func (s *Sandbox) handleControl(mux *http.ServeMux) {
	mux.HandleFunc("PUT /faults/{service}", func(w http.ResponseWriter, r *http.Request) {
		inj := s.injector(r.PathValue("service"))
		if inj == nil {
			http.Error(w, "unknown service "+r.PathValue("service")+" (github, neon or cloudflare)", http.StatusNotFound)
			return
		}
		var in []faultRule
		if !decodeStrict(w, r, &in) {
			return
		}
		rules := make([]fault.Rule, len(in))
		for i, f := range in {
			if f.Rate < 0 || f.Rate > 1 {
				http.Error(w, fmt.Sprintf("rule %d: rate %v is not between 0 and 1", i, f.Rate), http.StatusBadRequest)
				return
			}
			rules[i] = fault.Rule{Method: f.Method, Path: f.Path, Latency: time.Duration(f.Latency), Rate: f.Rate,
				Times: f.Times, Status: f.Status, RetryAfter: time.Duration(f.RetryAfter), Reset: f.Reset, AfterServe: f.AfterServe}
		}
		inj.Set(rules...)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /faults/{service}", func(w http.ResponseWriter, r *http.Request) {
		inj := s.injector(r.PathValue("service"))
		if inj == nil {
			http.Error(w, "unknown service "+r.PathValue("service")+" (github, neon or cloudflare)", http.StatusNotFound)
			return
		}
		inj.Set()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /health/{hostname}", func(w http.ResponseWriter, r *http.Request) {
		var h health
		if !decodeStrict(w, r, &h) {
			return
		}
		s.Edge.SetHealth(r.PathValue("hostname"), edge.Health{Status: h.Status, HealthyAfterRequests: h.HealthyAfterRequests,
			HealthyAfter: time.Duration(h.HealthyAfter), Never: h.Never, FailStatus: h.FailStatus})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /health/{hostname}", func(w http.ResponseWriter, r *http.Request) {
		s.Edge.ClearHealth(r.PathValue("hostname"))
		w.WriteHeader(http.StatusNoContent)
	})
}

// decodeStrict reads a JSON body into v, refusing unknown fields so that a
// misspelt key is an error rather than a rule that silently does nothing.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
