package pipeline

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/neon"
)

// In-memory fakes of the pipelines' ports, for unit tests of plans and
// decisions that need neither PostgreSQL nor the sandbox. They keep the
// state a real API keeps (versions, deployments, hostnames, branches and
// their tags) so that a test asserts on what a user would see, not on
// which calls were made. The sandbox's simulators stay the authority on
// the APIs' rules; these do not validate requests.

// fakeWorkers is one Cloudflare account's Workers.
type fakeWorkers struct {
	mu       sync.Mutex
	scripts  map[string]*fakeScript
	hosts    map[string]string // hostname → the Worker it serves
	versions int
	// failUpload makes uploads of a Worker fail.
	failUpload map[string]error
	uploads    []string // Worker names, in upload order
}

type fakeScript struct {
	tags     []string
	versions []string
	live     string // the deployed version ("" none)
	last     cloudflare.Script
}

func newFakeWorkers() *fakeWorkers {
	return &fakeWorkers{scripts: map[string]*fakeScript{}, hosts: map[string]string{}, failUpload: map[string]error{}}
}

// add makes a Worker with one live version, as if uploaded before the test.
func (f *fakeWorkers) add(name string, tags ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions++
	v := "v" + strconv.Itoa(f.versions)
	f.scripts[name] = &fakeScript{tags: tags, versions: []string{v}, live: v}
	return v
}

func (f *fakeWorkers) live(name string) (version string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sc := f.scripts[name]
	if sc == nil {
		return "", false
	}
	return sc.live, true
}

func (f *fakeWorkers) host(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hosts[name]
}

func notFound(op, name string) error {
	return &cloudflare.APIError{Op: op, Resource: name, Status: http.StatusNotFound}
}

func (f *fakeWorkers) UploadWorker(_ context.Context, s cloudflare.Script) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads = append(f.uploads, s.Name)
	if err := f.failUpload[s.Name]; err != nil {
		return "", err
	}
	for _, b := range s.ServiceBindings {
		if f.scripts[b.Service] == nil {
			return "", fmt.Errorf("upload %s: bound Worker %s does not exist", s.Name, b.Service)
		}
	}
	sc := f.scripts[s.Name]
	if sc == nil {
		sc = &fakeScript{}
		f.scripts[s.Name] = sc
	}
	f.versions++
	v := "v" + strconv.Itoa(f.versions)
	sc.versions, sc.live, sc.tags, sc.last = append(sc.versions, v), v, s.Tags, s
	return v, nil
}

func (f *fakeWorkers) AttachHostname(_ context.Context, _ cloudflare.HostnameMode, h cloudflare.Hostname) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if owner, ok := f.hosts[h.Name]; ok && owner != h.Script {
		return &cloudflare.HostnameTakenError{Hostname: h.Name, Worker: owner, Want: h.Script}
	}
	f.hosts[h.Name] = h.Script
	return nil
}

func (f *fakeWorkers) DetachHostname(_ context.Context, _ cloudflare.HostnameMode, h cloudflare.Hostname) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hosts[h.Name] == h.Script {
		delete(f.hosts, h.Name)
	}
	return nil
}

func (f *fakeWorkers) DeleteScript(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.scripts, name)
	return nil
}

func (f *fakeWorkers) CurrentDeployment(_ context.Context, script string) (cloudflare.Deployment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sc := f.scripts[script]
	switch {
	case sc == nil:
		return cloudflare.Deployment{}, notFound("current deployment", script)
	case sc.live == "":
		return cloudflare.Deployment{}, cloudflare.ErrNoDeployment
	}
	return cloudflare.Deployment{ID: "d-" + sc.live, Versions: []cloudflare.DeployedVersion{{VersionID: sc.live, Percentage: 100}}}, nil
}

func (f *fakeWorkers) Deploy(_ context.Context, script, versionID string) (cloudflare.Deployment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sc := f.scripts[script]
	if sc == nil || !slices.Contains(sc.versions, versionID) {
		return cloudflare.Deployment{}, notFound("deploy", script+"@"+versionID)
	}
	sc.live = versionID
	return cloudflare.Deployment{ID: "d-" + versionID, Versions: []cloudflare.DeployedVersion{{VersionID: versionID, Percentage: 100}}}, nil
}

func (f *fakeWorkers) ListScripts(_ context.Context, prefix string) ([]cloudflare.ScriptInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cloudflare.ScriptInfo
	for _, name := range slices.Sorted(maps.Keys(f.scripts)) {
		if strings.HasPrefix(name, prefix) {
			out = append(out, cloudflare.ScriptInfo{Name: name, Tags: f.scripts[name].tags})
		}
	}
	return out, nil
}

func (f *fakeWorkers) LookupScript(_ context.Context, name string) (cloudflare.ScriptLookup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := cloudflare.ScriptLookup{Workers: len(f.scripts)}
	if sc := f.scripts[name]; sc != nil {
		l.Found, l.Tags = true, sc.tags
	}
	return l, nil
}

func (f *fakeWorkers) ListCustomDomains(_ context.Context, prefix string) ([]cloudflare.CustomDomain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cloudflare.CustomDomain
	for _, h := range slices.Sorted(maps.Keys(f.hosts)) {
		if strings.HasPrefix(h, prefix) {
			out = append(out, cloudflare.CustomDomain{ID: "cd-" + h, Hostname: h, Service: f.hosts[h]})
		}
	}
	return out, nil
}

func (f *fakeWorkers) ListRoutes(_ context.Context, zoneID, prefix string) ([]cloudflare.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cloudflare.Route
	for _, h := range slices.Sorted(maps.Keys(f.hosts)) {
		if p := cloudflare.RoutePattern(h); strings.HasPrefix(p, prefix) {
			out = append(out, cloudflare.Route{ID: "rt-" + h, ZoneID: zoneID, Pattern: p, Script: f.hosts[h]})
		}
	}
	return out, nil
}

// fakeDatabases is one Neon account's projects, each a set of branches.
type fakeDatabases struct {
	mu       sync.Mutex
	branches map[string]map[string]neon.Branch // project → name → branch
	ids      int
}

func newFakeDatabases() *fakeDatabases {
	return &fakeDatabases{branches: map[string]map[string]neon.Branch{}}
}

// add makes a branch (the project's default when parent is "").
func (f *fakeDatabases) add(project, name, parent string, tags *neon.Tags) neon.Branch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(project, name, parent, tags)
}

func (f *fakeDatabases) addLocked(project, name, parent string, tags *neon.Tags) neon.Branch {
	if f.branches[project] == nil {
		f.branches[project] = map[string]neon.Branch{}
	}
	f.ids++
	b := neon.Branch{ID: "br-" + strconv.Itoa(f.ids), ProjectID: project, Name: name, CurrentState: "ready", Default: parent == ""}
	if p, ok := f.branches[project][parent]; ok {
		b.ParentID = p.ID
	}
	if tags != nil {
		b.Annotations = map[string]string{neon.AnnotationCreator: neon.CreatorValue, neon.AnnotationRepo: tags.Repo, neon.AnnotationPurpose: tags.Purpose}
		if tags.PR > 0 {
			b.Annotations[neon.AnnotationPR] = strconv.Itoa(tags.PR)
		}
	}
	f.branches[project][name] = b
	return b
}

func (f *fakeDatabases) uris(b neon.Branch) neon.URIs {
	return neon.URIs{Pooled: "postgres://pooled/" + b.Name, Direct: "postgres://direct/" + b.Name}
}

func (f *fakeDatabases) EnsureBranch(_ context.Context, projectID string, opts neon.BranchOptions) (neon.Branch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.branches[projectID][opts.Name]; ok {
		if !opts.Tags.Match(b) {
			return b, &neon.NotOwnedError{Project: projectID, Branch: b, Want: opts.Tags}
		}
		return b, nil
	}
	return f.addLocked(projectID, opts.Name, opts.Parent, &opts.Tags), nil
}

func (f *fakeDatabases) find(projectID, branchID string) (neon.Branch, bool) {
	for _, b := range f.branches[projectID] {
		if b.ID == branchID {
			return b, true
		}
	}
	return neon.Branch{}, false
}

func (f *fakeDatabases) ConnectionURIs(_ context.Context, projectID, branchID, _, _ string) (neon.URIs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.find(projectID, branchID)
	if !ok {
		return neon.URIs{}, fmt.Errorf("neon: no branch %s in project %s", branchID, projectID)
	}
	return f.uris(b), nil
}

func (f *fakeDatabases) OwnConnectionURIs(ctx context.Context, projectID string, b neon.Branch, _ string) (neon.URIs, string, error) {
	uris, err := f.ConnectionURIs(ctx, projectID, b.ID, "", "")
	return uris, b.ID, err
}

func (f *fakeDatabases) ResetConnectionURIs(ctx context.Context, projectID, branchID, database, role string) (neon.URIs, error) {
	return f.ConnectionURIs(ctx, projectID, branchID, database, role)
}

// owned returns the branch called name when tags are its tags.
func (f *fakeDatabases) owned(projectID, name string, tags neon.Tags) (neon.Branch, bool, error) {
	b, ok := f.branches[projectID][name]
	if ok && !tags.Match(b) {
		return b, true, &neon.NotOwnedError{Project: projectID, Branch: b, Want: tags}
	}
	return b, ok, nil
}

func (f *fakeDatabases) DeleteBranchNamed(_ context.Context, projectID, name string, tags neon.Tags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, _, err := f.owned(projectID, name, tags); err != nil {
		return err
	}
	delete(f.branches[projectID], name)
	return nil
}

func (f *fakeDatabases) ResetBranch(_ context.Context, projectID, name string, tags neon.Tags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, found, err := f.owned(projectID, name, tags)
	if err == nil && !found {
		err = fmt.Errorf("neon: no branch %s in project %s", name, projectID)
	}
	return err
}

func (f *fakeDatabases) FindBranch(_ context.Context, projectID, name string) (neon.Branch, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.branches[projectID][name]
	return b, ok, nil
}

func (f *fakeDatabases) ListBranches(_ context.Context, projectID string, flt neon.Filter) ([]neon.Branch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []neon.Branch
	for _, name := range slices.Sorted(maps.Keys(f.branches[projectID])) {
		b := f.branches[projectID][name]
		a := b.Annotations
		switch {
		case !strings.HasPrefix(name, flt.NamePrefix),
			!flt.Foreign && !b.Owned(),
			flt.Repo != "" && a[neon.AnnotationRepo] != flt.Repo,
			flt.Purpose != "" && a[neon.AnnotationPurpose] != flt.Purpose:
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

// fakeRepo is a repository's files at one commit, served as GitHub serves
// its tarball (one top-level folder). The Repo methods a test does not
// give it come from the nil embedded interface: calling one panics, which
// fails the test where the unexpected call is.
type fakeRepo struct {
	Repo
	files map[string]string
}

func (f *fakeRepo) Tarball(_ context.Context, ref string) (io.ReadCloser, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := slices.Sorted(maps.Keys(f.files))
	for _, name := range names {
		body := f.files[name]
		if err := tw.WriteHeader(&tar.Header{Name: "owner-repo-" + short(ref) + "/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

// hostStatus answers health checks with a status per hostname (200 when
// not listed), as the Workers would.
type hostStatus map[string]int

func (h hostStatus) RoundTrip(req *http.Request) (*http.Response, error) {
	status, ok := h[req.URL.Hostname()]
	if !ok {
		status = http.StatusOK
	}
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}
