package cloudflare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go/v6/workers"
)

// CommitVar is the plain_text binding carrying the commit a Worker was built
// from; the sandbox's edge shows it, and it tells a person which code is live.
const CommitVar = "DEPLOYBOT_COMMIT"

// Script is everything needed to upload one Worker.
type Script struct {
	Name       string // e.g. "codex-web-preview-7"
	MainModule string // name of the module exporting the fetch handler
	Modules    []Module

	CompatibilityDate  string // YYYY-MM-DD
	CompatibilityFlags []string

	Vars    map[string]string // plain_text bindings (put the commit in CommitVar)
	Secrets map[string]string // secret_text bindings; values never leave this package except to the API
	// KeepSecrets keeps the secrets the Worker already has that Secrets
	// does not name (set with wrangler secret put or in the dashboard), as
	// wrangler deploy does (keep_bindings: secret_text, secret_key).
	// Without it an upload replaces every binding.
	KeepSecrets     bool
	ServiceBindings []ServiceBinding

	// AssetsDir, when set, is uploaded as the Worker's static assets. Its
	// files are read through an os.Root: a symlink that leads out of
	// AssetsRoot (or out of AssetsDir when AssetsRoot is empty), or an
	// absolute one, fails the upload before anything is sent, so a build
	// cannot make the bot publish a host file.
	AssetsDir string
	// AssetsRoot, when set, is the folder AssetsDir must stay inside (the
	// workspace); AssetsDir is then relative to it.
	AssetsRoot string
	// AssetsBinding, when set with AssetsDir, exposes the assets to the Worker
	// as env.<AssetsBinding> (wrangler's assets.binding).
	AssetsBinding string

	// Tags label the Worker (at most eight, without "," or "&"): the bot
	// marks what it made, so a sweep can find it again without its database.
	Tags []string
}

// Module is one file of the Worker. ContentType defaults from the file
// extension (.js/.mjs: ES module, .wasm, .map, .txt, .py).
type Module struct {
	Name        string
	ContentType string
	Content     []byte
}

// ServiceBinding exposes another Worker as env.<Binding>.
type ServiceBinding struct {
	Binding string
	Service string
}

// String keeps secret values out of logs that print a Script with %v.
func (s Script) String() string {
	names := make([]string, 0, len(s.Modules))
	for _, m := range s.Modules {
		names = append(names, m.Name)
	}
	return fmt.Sprintf("Script{Name:%s MainModule:%s Modules:%v Vars:%d Secrets:%v(redacted) Services:%d AssetsDir:%q}",
		s.Name, s.MainModule, names, len(s.Vars), sortedKeys(s.Secrets), len(s.ServiceBindings), s.AssetsDir)
}

// GoString is String, so %#v does not print secrets either.
func (s Script) GoString() string { return s.String() }

// ScriptInfo describes an uploaded Worker.
type ScriptInfo struct {
	Name       string
	CreatedOn  time.Time
	ModifiedOn time.Time
	Tags       []string
}

// Version is one immutable upload of a Worker (code + bindings).
type Version struct {
	ID        string
	Number    int
	CreatedOn time.Time
	Source    string
}

// Deployment says which versions serve a Worker's traffic.
type Deployment struct {
	ID        string
	CreatedOn time.Time
	Versions  []DeployedVersion
}

// DeployedVersion is one version of a deployment with its share of traffic.
type DeployedVersion struct {
	VersionID  string
	Percentage float64
}

// VersionID is the version receiving most of the traffic ("" for an empty deployment).
func (d Deployment) VersionID() string {
	best := DeployedVersion{}
	for _, v := range d.Versions {
		if v.Percentage > best.Percentage {
			best = v
		}
	}
	return best.VersionID
}

// ErrNoDeployment is returned by CurrentDeployment for a Worker that exists
// but serves no version.
var ErrNoDeployment = errors.New("cloudflare: worker has no deployment")

// UploadWorker uploads (creates or replaces) a Worker and returns the id of
// the version the upload created. An upload creates a new version and deploys
// it to 100% of traffic; repeating it creates another, identical version.
func (c *Client) UploadWorker(ctx context.Context, s Script) (string, error) {
	secrets := make([]string, 0, len(s.Secrets))
	for _, v := range s.Secrets {
		secrets = append(secrets, v)
	}
	params, err := c.uploadParams(s)
	if err != nil {
		return "", fmt.Errorf("cloudflare: upload worker %q: %w", s.Name, err)
	}
	if s.AssetsDir != "" {
		jwt, cfg, err := c.uploadAssets(ctx, s.Name, s.AssetsRoot, s.AssetsDir)
		if err != nil {
			return "", err
		}
		var assets workers.ScriptUpdateParamsMetadataAssets
		set(&assets.JWT, jwt)
		if cfg.headers != "" || cfg.redirects != "" {
			var ac workers.ScriptUpdateParamsMetadataAssetsConfig
			if cfg.headers != "" {
				set(&ac.Headers, cfg.headers)
			}
			if cfg.redirects != "" {
				set(&ac.Redirects, cfg.redirects)
			}
			set(&assets.Config, ac)
		}
		set(&params.Metadata.Value.Assets, assets)
	}
	if _, err := c.scripts.Update(ctx, s.Name, params); err != nil {
		return "", c.wrap(err, "upload worker", s.Name, secrets...)
	}
	// The upload answer does not name the version it created; the upload also
	// deployed that version, so the newest deployment does.
	d, err := c.CurrentDeployment(ctx, s.Name)
	if err != nil {
		return "", err
	}
	return d.VersionID(), nil
}

func (c *Client) uploadParams(s Script) (workers.ScriptUpdateParams, error) {
	var p workers.ScriptUpdateParams
	if s.Name == "" {
		return p, errors.New("script name is empty")
	}
	if len(s.Modules) == 0 {
		return p, errors.New("no modules")
	}
	files := make([]io.Reader, 0, len(s.Modules))
	var hasMain bool
	for _, m := range s.Modules {
		if m.Name == "" {
			return p, errors.New("module without a name")
		}
		hasMain = hasMain || m.Name == s.MainModule
		ct := m.ContentType
		if ct == "" {
			ct = moduleContentType(m.Name)
		}
		files = append(files, &moduleFile{Reader: bytes.NewReader(m.Content), name: m.Name, contentType: ct})
	}
	if !hasMain {
		return p, fmt.Errorf("main module %q is not among the modules", s.MainModule)
	}

	var bindings []workers.ScriptUpdateParamsMetadataBindingUnion
	seen := map[string]string{}
	claim := func(name, kind string) error {
		if prev, ok := seen[name]; ok {
			return fmt.Errorf("binding %q is both a %s and a %s", name, prev, kind)
		}
		seen[name] = kind
		return nil
	}
	for _, name := range sortedKeys(s.Vars) {
		if err := claim(name, "var"); err != nil {
			return p, err
		}
		var b workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindPlainText
		set(&b.Name, name)
		set(&b.Text, s.Vars[name])
		set(&b.Type, workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindPlainTextTypePlainText)
		bindings = append(bindings, b)
	}
	for _, name := range sortedKeys(s.Secrets) {
		if err := claim(name, "secret"); err != nil {
			return p, err
		}
		var b workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindSecretText
		set(&b.Name, name)
		set(&b.Text, s.Secrets[name])
		set(&b.Type, workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindSecretTextTypeSecretText)
		bindings = append(bindings, b)
	}
	for _, sb := range s.ServiceBindings {
		if err := claim(sb.Binding, "service binding"); err != nil {
			return p, err
		}
		var b workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindService
		set(&b.Name, sb.Binding)
		set(&b.Service, sb.Service)
		set(&b.Type, workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindServiceTypeService)
		bindings = append(bindings, b)
	}
	if s.AssetsBinding != "" && s.AssetsDir != "" {
		if err := claim(s.AssetsBinding, "assets binding"); err != nil {
			return p, err
		}
		var b workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindAssets
		set(&b.Name, s.AssetsBinding)
		set(&b.Type, workers.ScriptUpdateParamsMetadataBindingsWorkersBindingKindAssetsTypeAssets)
		bindings = append(bindings, b)
	}

	var md workers.ScriptUpdateParamsMetadata
	set(&md.MainModule, s.MainModule)
	if s.CompatibilityDate != "" {
		set(&md.CompatibilityDate, s.CompatibilityDate)
	}
	if len(s.CompatibilityFlags) > 0 {
		set(&md.CompatibilityFlags, s.CompatibilityFlags)
	}
	// Always sent, even empty: an upload replaces all bindings, and an absent
	// list must not be mistaken for "keep the previous ones".
	if bindings == nil {
		bindings = []workers.ScriptUpdateParamsMetadataBindingUnion{}
	}
	set(&md.Bindings, bindings)
	if len(s.Tags) > 0 {
		set(&md.Tags, s.Tags)
	}
	if s.KeepSecrets {
		set(&md.KeepBindings, []string{"secret_text", "secret_key"})
	}

	set(&p.AccountID, c.accountID)
	set(&p.Metadata, md)
	set(&p.Files, files)
	return p, nil
}

// moduleFile gives the SDK's multipart encoder a part file name and type.
type moduleFile struct {
	*bytes.Reader
	name, contentType string
}

func (f *moduleFile) Filename() string    { return f.name }
func (f *moduleFile) ContentType() string { return f.contentType }

func moduleContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".js", ".mjs":
		return "application/javascript+module"
	case ".cjs":
		return "application/javascript"
	case ".wasm":
		return "application/wasm"
	case ".map":
		return "application/source-map"
	case ".py":
		return "text/x-python"
	case ".txt", ".html", ".sql":
		return "text/plain"
	}
	return "application/octet-stream"
}

// DeleteScript deletes a Worker, even one another Worker binds (force). A
// Worker that does not exist is not an error.
func (c *Client) DeleteScript(ctx context.Context, name string) error {
	var p workers.ScriptDeleteParams
	set(&p.AccountID, c.accountID)
	// A Worker another binds (a preview's api, bound by its web) is not
	// deleted without force; the bot deletes a whole preview, dependants
	// included, and in any order (teardown runs its Workers in parallel).
	set(&p.Force, true)
	_, err := c.scripts.Delete(ctx, name, p)
	if err = c.wrap(err, "delete worker", name); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}

// ScriptLookup is what the account's list of Workers says about one name.
type ScriptLookup struct {
	Tags  []string
	Found bool // false: the account has no Worker of that name
	// Workers is how many Workers the account has. Its plan caps the
	// number (100 on Workers Free, 500 on Paid): an upload that would
	// create one more is refused with error 10037.
	Workers int
}

// LookupScript reads the Worker called name from the account's list. The
// bot looks before it overwrites or deletes a Worker, to be sure it is its
// own, and before it creates one, to warn while the account still has room.
func (c *Client) LookupScript(ctx context.Context, name string) (ScriptLookup, error) {
	all, err := c.ListScripts(ctx, "")
	if err != nil {
		return ScriptLookup{}, err
	}
	out := ScriptLookup{Workers: len(all)}
	for _, s := range all {
		if s.Name == name {
			out.Tags, out.Found = s.Tags, true
		}
	}
	return out, nil
}

// NotOwnedError is a Worker the bot was about to overwrite or delete that
// its tags do not give to the bot for the purpose at hand: a person's,
// another repository's, another pull request's. It is left as it is.
type NotOwnedError struct {
	Account string
	Script  string
	Tags    []string
	// Want says what the bot looked for, e.g. "preview Worker of
	// acme/app#5".
	Want string
}

func (e *NotOwnedError) Error() string {
	owner := "it has no deploybot tags: made by a person or another tool"
	if slices.Contains(e.Tags, "deploybot") {
		owner = "its tags say " + strings.Join(e.Tags, ", ")
	}
	return fmt.Sprintf("cloudflare: Worker %q in account %s is not the %s: %s. The bot leaves it untouched; rename or delete it, or choose another name in .github/deploybot.yml",
		e.Script, e.Account, e.Want, owner)
}

// ListScripts lists the account's Workers whose name starts with prefix
// ("" lists all).
func (c *Client) ListScripts(ctx context.Context, prefix string) ([]ScriptInfo, error) {
	var p workers.ScriptListParams
	set(&p.AccountID, c.accountID)
	page, err := c.scripts.List(ctx, p)
	if err != nil {
		return nil, c.wrap(err, "list workers", prefix+"*")
	}
	var out []ScriptInfo
	for _, s := range page.Result {
		if strings.HasPrefix(s.ID, prefix) {
			out = append(out, ScriptInfo{Name: s.ID, CreatedOn: s.CreatedOn, ModifiedOn: s.ModifiedOn, Tags: s.Tags})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListVersions lists a Worker's versions, newest first.
func (c *Client) ListVersions(ctx context.Context, script string) ([]Version, error) {
	const perPage = 100
	var out []Version
	for pageNo := int64(1); pageNo <= maxPages; pageNo++ {
		var p workers.ScriptVersionListParams
		set(&p.AccountID, c.accountID)
		set(&p.Page, pageNo)
		set(&p.PerPage, int64(perPage))
		page, err := c.scripts.Versions.List(ctx, script, p)
		if err != nil {
			return nil, c.wrap(err, "list versions of worker", script)
		}
		for _, v := range page.Result.Items {
			created, _ := time.Parse(time.RFC3339Nano, v.Metadata.CreatedOn)
			out = append(out, Version{ID: v.ID, Number: int(v.Number), CreatedOn: created, Source: string(v.Metadata.Source)})
		}
		if lastPage(len(page.Result.Items), page.ResultInfo.PerPage, perPage) {
			break
		}
	}
	return out, nil
}

// maxPages bounds every paginated listing, in case a server keeps answering
// full pages.
const maxPages = 1000

// lastPage decides from a page's size whether more pages may follow, trusting
// the per_page the server reports over the one requested (servers cap it).
func lastPage(n int, reportedPerPage int64, requested int) bool {
	per := int(reportedPerPage)
	if per <= 0 {
		per = requested
	}
	return n == 0 || n < per
}

// CurrentDeployment returns the deployment serving a Worker's traffic.
// It returns an *APIError satisfying IsNotFound for a missing Worker and
// ErrNoDeployment for a Worker without deployments.
func (c *Client) CurrentDeployment(ctx context.Context, script string) (Deployment, error) {
	var p workers.ScriptDeploymentListParams
	set(&p.AccountID, c.accountID)
	res, err := c.scripts.Deployments.List(ctx, script, p)
	if err != nil {
		return Deployment{}, c.wrap(err, "get deployments of worker", script)
	}
	if len(res.Deployments) == 0 {
		return Deployment{}, fmt.Errorf("%w: %q", ErrNoDeployment, script)
	}
	// The API lists the deployment serving traffic first.
	return fromSDKDeployment(res.Deployments[0]), nil
}

// Deploy sends 100% of a Worker's traffic to one of its versions (e.g. to
// roll back). Deploying the version already serving all traffic is a no-op.
func (c *Client) Deploy(ctx context.Context, script, versionID string) (Deployment, error) {
	if cur, err := c.CurrentDeployment(ctx, script); err == nil && len(cur.Versions) == 1 &&
		cur.Versions[0].VersionID == versionID && cur.Versions[0].Percentage == 100 {
		return cur, nil
	}
	var v workers.DeploymentVersionParam
	set(&v.VersionID, versionID)
	set(&v.Percentage, float64(100))
	var p workers.ScriptDeploymentNewParams
	set(&p.AccountID, c.accountID)
	set(&p.Deployment.Strategy, workers.DeploymentStrategyPercentage)
	set(&p.Deployment.Versions, []workers.DeploymentVersionParam{v})
	d, err := c.scripts.Deployments.New(ctx, script, p)
	if err != nil {
		return Deployment{}, c.wrap(err, "deploy version "+versionID+" of worker", script)
	}
	return fromSDKDeployment(*d), nil
}

func fromSDKDeployment(d workers.Deployment) Deployment {
	out := Deployment{ID: d.ID, CreatedOn: d.CreatedOn}
	for _, v := range d.Versions {
		out.Versions = append(out.Versions, DeployedVersion{VersionID: v.VersionID, Percentage: v.Percentage})
	}
	return out
}

// PutSecret sets one secret_text binding of an existing Worker. Cloudflare
// creates and deploys a new version carrying it.
func (c *Client) PutSecret(ctx context.Context, script, name, value string) error {
	var body workers.ScriptSecretUpdateParamsBodyWorkersBindingKindSecretText
	set(&body.Name, name)
	set(&body.Text, value)
	set(&body.Type, workers.ScriptSecretUpdateParamsBodyWorkersBindingKindSecretTextTypeSecretText)
	var p workers.ScriptSecretUpdateParams
	set(&p.AccountID, c.accountID)
	p.Body = body
	if _, err := c.scripts.Secrets.Update(ctx, script, p); err != nil {
		return c.wrap(err, "put secret "+name+" of worker", script, value)
	}
	return nil
}

// ListSecrets returns the names of a Worker's secrets (values are never readable).
func (c *Client) ListSecrets(ctx context.Context, script string) ([]string, error) {
	var p workers.ScriptSecretListParams
	set(&p.AccountID, c.accountID)
	page, err := c.scripts.Secrets.List(ctx, script, p)
	if err != nil {
		return nil, c.wrap(err, "list secrets of worker", script)
	}
	names := make([]string, 0, len(page.Result))
	for _, s := range page.Result {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
