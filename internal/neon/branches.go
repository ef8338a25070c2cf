package neon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// Annotation keys deploybot puts on the branches it creates, so that it can
// tell its own branches from people's and clean up after closed PRs even
// when it missed the close event.
const (
	AnnotationCreator = "deploybot-creator" // always CreatorValue
	AnnotationRepo    = "deploybot-repo"    // "owner/name"
	AnnotationPurpose = "deploybot-purpose" // PurposePreview | PurposeTest
	AnnotationPR      = "deploybot-pr"      // pull request number, decimal

	CreatorValue = "deploybot"
)

// Branch purposes.
const (
	PurposePreview = "preview"
	PurposeTest    = "test"
	// PurposeSchemaRoot marks the shared schema-only root that schema-only
	// branches are made from (see EnsureBranch).
	PurposeSchemaRoot = "schema-root"
)

// Init sources of a new branch.
const (
	InitParentData = "parent-data" // schema and data of the parent (Neon's default)
	InitSchemaOnly = "schema-only" // schema only, no rows; no parent link kept
)

// Branch is a Neon database branch.
type Branch struct {
	ID           string     `json:"id"`
	ProjectID    string     `json:"project_id"`
	ParentID     string     `json:"parent_id,omitempty"`
	Name         string     `json:"name"`
	CurrentState string     `json:"current_state"`
	PendingState string     `json:"pending_state,omitempty"`
	Default      bool       `json:"default"`
	Protected    bool       `json:"protected"`
	InitSource   string     `json:"init_source,omitempty"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`

	// Annotations are the branch's key/value tags (see AnnotationCreator).
	Annotations map[string]string `json:"-"`
}

// Owned reports whether deploybot created the branch.
func (b Branch) Owned() bool { return b.Annotations[AnnotationCreator] == CreatorValue }

// Tags say why deploybot made a branch; they become its annotations.
type Tags struct {
	Repo    string // "owner/name"
	Purpose string // PurposePreview | PurposeTest
	PR      int    // 0 when not for a pull request
}

// Match reports whether b carries these tags: deploybot made it for this
// repository and purpose (and pull request, when t names one).
func (t Tags) Match(b Branch) bool {
	a := b.Annotations
	if a[AnnotationCreator] != CreatorValue || a[AnnotationRepo] != t.Repo || a[AnnotationPurpose] != t.Purpose {
		return false
	}
	return t.PR == 0 || a[AnnotationPR] == strconv.Itoa(t.PR)
}

// TagsOf returns the tags b's annotations hold.
func TagsOf(b Branch) Tags {
	pr, _ := strconv.Atoi(b.Annotations[AnnotationPR])
	return Tags{Repo: b.Annotations[AnnotationRepo], Purpose: b.Annotations[AnnotationPurpose], PR: pr}
}

func (t Tags) String() string {
	s := t.Purpose + " branch of " + t.Repo
	if t.PR > 0 {
		s += "#" + strconv.Itoa(t.PR)
	}
	return s
}

// NotOwnedError is a branch the bot was about to reuse, reset or delete
// that it did not make for the purpose at hand: a person's, another
// repository's, another pull request's, or the project's default branch.
// The branch is left as it is.
type NotOwnedError struct {
	Project string
	Branch  Branch
	Want    Tags
}

func (e *NotOwnedError) Error() string {
	var owner string
	switch {
	case e.Branch.Default:
		owner = "it is the project's default branch"
	case !e.Branch.Owned():
		owner = "it has no deploybot annotations: made by a person or another tool"
	default:
		owner = "its annotations say it is the " + TagsOf(e.Branch).String()
	}
	return fmt.Sprintf("neon: branch %q (%s) in project %s is not the %s: %s. The bot leaves it untouched; rename or delete it, or choose another name in .github/deploybot.yml",
		e.Branch.Name, e.Branch.ID, e.Project, e.Want, owner)
}

// own returns a *NotOwnedError unless b was made by deploybot for want.
// The default branch is never the bot's, whatever its annotations say.
// ownOrShared is own, except that a shared schema-only root (made by
// deploybot for any repository of the project) is everyone's.
func ownOrShared(projectID string, b Branch, want Tags) error {
	if want.Purpose == PurposeSchemaRoot && b.Annotations[AnnotationCreator] == CreatorValue && b.Annotations[AnnotationPurpose] == PurposeSchemaRoot {
		return nil
	}
	return own(projectID, b, want)
}

func own(projectID string, b Branch, want Tags) error {
	if b.Default || !want.Match(b) {
		return &NotOwnedError{Project: projectID, Branch: b, Want: want}
	}
	return nil
}

func (t Tags) annotations() map[string]string {
	a := map[string]string{AnnotationCreator: CreatorValue}
	if t.Repo != "" {
		a[AnnotationRepo] = t.Repo
	}
	if t.Purpose != "" {
		a[AnnotationPurpose] = t.Purpose
	}
	if t.PR > 0 {
		a[AnnotationPR] = strconv.Itoa(t.PR)
	}
	return a
}

// BranchOptions describe a branch for EnsureBranch.
type BranchOptions struct {
	Name string
	// Parent is the parent branch's name; "" means the project's default branch.
	Parent string
	// InitSource is InitParentData (default when "") or InitSchemaOnly.
	InitSource string
	// ExpiresAt, when not zero, asks Neon to delete the branch by itself then.
	ExpiresAt time.Time
	Tags      Tags
}

type annotationData struct {
	Value map[string]string `json:"value"`
}

// branchPageSize is the page size asked for when listing; a shorter page is
// the last one.
const branchPageSize = 100

// listBranches returns the project's branches whose name or id contains
// search ("" for all), with their annotations, following pagination.
func (c *Client) listBranches(ctx context.Context, projectID, search string) ([]Branch, error) {
	q := url.Values{"limit": {strconv.Itoa(branchPageSize)}}
	if search != "" {
		q.Set("search", search)
	}
	var all []Branch
	seen := map[string]bool{}
	for range 1000 {
		var out struct {
			Branches    []Branch                  `json:"branches"`
			Annotations map[string]annotationData `json:"annotations"`
			Pagination  *struct {
				Next string `json:"next"`
			} `json:"pagination"`
		}
		if _, err := c.do(ctx, "GET", projectPath(projectID, "branches"), q, nil, &out); err != nil {
			return nil, err
		}
		for _, b := range out.Branches {
			b.Annotations = out.Annotations[b.ID].Value
			all = append(all, b)
		}
		if len(out.Branches) < branchPageSize || out.Pagination == nil || out.Pagination.Next == "" || seen[out.Pagination.Next] {
			return all, nil
		}
		seen[out.Pagination.Next] = true
		q.Set("cursor", out.Pagination.Next)
	}
	return all, nil
}

// FindBranch returns the branch named exactly name, and whether it exists.
func (c *Client) FindBranch(ctx context.Context, projectID, name string) (Branch, bool, error) {
	bs, err := c.listBranches(ctx, projectID, name)
	if err != nil {
		return Branch{}, false, fmt.Errorf("neon: find branch %q in project %s: %w", name, projectID, err)
	}
	for _, b := range bs {
		if b.Name == name {
			return b, true, nil
		}
	}
	return Branch{}, false, nil
}

// GetBranch returns a branch by id, with its annotations.
func (c *Client) GetBranch(ctx context.Context, projectID, branchID string) (Branch, error) {
	var out struct {
		Branch     Branch          `json:"branch"`
		Annotation *annotationData `json:"annotation"`
	}
	if _, err := c.do(ctx, "GET", projectPath(projectID, "branches", branchID), nil, nil, &out); err != nil {
		return Branch{}, fmt.Errorf("neon: get branch %s in project %s: %w", branchID, projectID, err)
	}
	if out.Annotation != nil {
		out.Branch.Annotations = out.Annotation.Value
	}
	return out.Branch, nil
}

// Filter selects branches for ListBranches.
type Filter struct {
	NamePrefix string // e.g. "pr-"; "" for any name
	Repo       string // AnnotationRepo must equal it when not ""
	Purpose    string // AnnotationPurpose must equal it when not ""
	// Foreign includes branches deploybot did not create.
	Foreign bool
}

// ListBranches returns the project's branches that match f; by default only
// the ones deploybot created.
func (c *Client) ListBranches(ctx context.Context, projectID string, f Filter) ([]Branch, error) {
	bs, err := c.listBranches(ctx, projectID, f.NamePrefix)
	if err != nil {
		return nil, fmt.Errorf("neon: list branches in project %s: %w", projectID, err)
	}
	var out []Branch
	for _, b := range bs {
		switch {
		case !strings.HasPrefix(b.Name, f.NamePrefix),
			!f.Foreign && !b.Owned(),
			f.Repo != "" && b.Annotations[AnnotationRepo] != f.Repo,
			f.Purpose != "" && b.Annotations[AnnotationPurpose] != f.Purpose:
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

func (c *Client) defaultBranch(ctx context.Context, projectID string) (Branch, error) {
	bs, err := c.listBranches(ctx, projectID, "")
	if err != nil {
		return Branch{}, err
	}
	for _, b := range bs {
		if b.Default {
			return b, nil
		}
	}
	return Branch{}, errors.New("project has no default branch")
}

type createBranchRequest struct {
	Branch struct {
		ParentID   string `json:"parent_id,omitempty"`
		Name       string `json:"name"`
		InitSource string `json:"init_source,omitempty"`
		ExpiresAt  string `json:"expires_at,omitempty"`
	} `json:"branch"`
	Endpoints       []endpointOptions `json:"endpoints,omitempty"`
	AnnotationValue map[string]string `json:"annotation_value,omitempty"`
}

type endpointOptions struct {
	Type string `json:"type"`
}

// createAttempts bounds how often EnsureBranch sends its create request.
const createAttempts = 4

// EnsureBranch returns the branch named o.Name, creating it from its parent
// with a read-write compute endpoint when it does not exist yet, and waits
// until it is ready.
//
// It is safe to repeat: it looks the name up before creating, and again
// after a create whose answer was lost or refused, so a retried job, a
// dropped connection or another replica never leads to a second branch.
//
// An existing branch is reused only when its annotations say deploybot
// made it for o.Tags (this repository, purpose and pull request);
// otherwise EnsureBranch returns a *NotOwnedError and leaves it alone, so
// a person's "pr-12" is never handed to a pull request's code.
//
// A schema-only branch (o.InitSource InitSchemaOnly) is made as a child of
// the project's shared schema-only copy of o.Parent, not as a schema-only
// branch of its own: Neon makes every schema-only branch a root branch,
// and a project allows only a few (3 on the Free plan, the first branch
// included). The copy is created on first use, recreated with the
// parent's current schema once it is older than SchemaRootMaxAge and no
// branch depends on it, and never deleted by the sweeper. Children start
// with the schema and no rows, as a schema-only branch does, and unlike
// one they can be reset from their parent (ResetBranch).
func (c *Client) EnsureBranch(ctx context.Context, projectID string, o BranchOptions) (Branch, error) {
	if o.InitSource != InitSchemaOnly {
		return c.ensureBranch(ctx, projectID, o)
	}
	for attempt := 1; ; attempt++ {
		root, err := c.schemaRoot(ctx, projectID, o.Parent, o.Tags.Repo)
		if err != nil {
			return Branch{}, fmt.Errorf("neon: ensure branch %q in project %s: %w", o.Name, projectID, err)
		}
		child := o
		child.Parent, child.InitSource = root.Name, ""
		b, err := c.ensureBranch(ctx, projectID, child)
		if err == nil || attempt == 2 {
			return b, err
		}
		// The last branch of the root was deleted meanwhile, and the root
		// with it (DeleteBranchNamed): make it again, once.
		if _, found, ferr := c.FindBranch(ctx, projectID, root.Name); ferr != nil || found {
			return b, err
		}
	}
}

// SchemaRootMaxAge is how old a shared schema-only root may get before it
// is recreated from its parent, when no branch depends on it.
const SchemaRootMaxAge = time.Hour

// SchemaRootName is the name of the shared schema-only copy of parent.
func SchemaRootName(parent string) string {
	name := "deploybot-schema-" + parent
	if len(name) > 256 { // Neon's limit on branch names
		name = name[:256]
	}
	return name
}

// schemaRoot returns the shared schema-only copy of parent ("" for the
// default branch), making it when missing and renewing it when stale and
// unused.
func (c *Client) schemaRoot(ctx context.Context, projectID, parent, repo string) (Branch, error) {
	if parent == "" {
		p, err := c.defaultBranch(ctx, projectID)
		if err != nil {
			return Branch{}, fmt.Errorf("find default branch: %w", err)
		}
		parent = p.Name
	}
	name := SchemaRootName(parent)
	b, ok, err := c.FindBranch(ctx, projectID, name)
	if err != nil {
		return Branch{}, err
	}
	if ok {
		if b.Annotations[AnnotationCreator] != CreatorValue || b.Annotations[AnnotationPurpose] != PurposeSchemaRoot || b.ParentID != "" {
			return Branch{}, &NotOwnedError{Project: projectID, Branch: b, Want: Tags{Repo: repo, Purpose: PurposeSchemaRoot}}
		}
		if time.Since(b.CreatedAt) < SchemaRootMaxAge || c.hasChildren(ctx, projectID, b.ID) {
			return c.settle(ctx, projectID, b)
		}
		// Stale and unused: renew it. A branch made from it meanwhile
		// makes Neon refuse the delete; then it stays as it is.
		if err := c.DeleteBranch(ctx, projectID, b.ID); err != nil {
			if st := StatusOf(err); st >= 400 && st < 500 && st != http.StatusNotFound {
				return c.settle(ctx, projectID, b)
			}
			return Branch{}, fmt.Errorf("renew the schema-only copy %q: %w", name, err)
		}
	}
	root, err := c.ensureBranch(ctx, projectID, BranchOptions{
		Name: name, Parent: parent, InitSource: InitSchemaOnly, Tags: Tags{Repo: repo, Purpose: PurposeSchemaRoot},
	})
	if StatusOf(err) == http.StatusUnprocessableEntity {
		// Neon's root branch allowance is used up, by the project's first
		// branch and schema-only branches made by people or other tools:
		// say what to do about it.
		return Branch{}, fmt.Errorf("%w. The shared schema-only copy %q is a root branch, and the project has no room for another: Neon allows a few per project by plan (3 on Free, the first branch and every schema-only branch included; neon.com/docs/guides/branching-schema-only). Delete a schema-only branch nobody uses, or move the project to a plan with more root branches", err, name)
	}
	return root, err
}

// hasChildren reports whether any branch was made from branch id (yes when
// the API cannot say: a root in use must never be deleted).
func (c *Client) hasChildren(ctx context.Context, projectID, id string) bool {
	bs, err := c.listBranches(ctx, projectID, "")
	if err != nil {
		return true
	}
	for _, b := range bs {
		if b.ParentID == id {
			return true
		}
	}
	return false
}

// ensureBranch is EnsureBranch without the schema-only rewrite.
func (c *Client) ensureBranch(ctx context.Context, projectID string, o BranchOptions) (Branch, error) {
	if o.Name == "" {
		return Branch{}, fmt.Errorf("neon: ensure branch in project %s: no name given", projectID)
	}
	fail := func(err error) (Branch, error) {
		return Branch{}, fmt.Errorf("neon: ensure branch %q in project %s: %w", o.Name, projectID, err)
	}
	if o.Tags.Repo == "" || o.Tags.Purpose == "" {
		return fail(errors.New("no repository and purpose to tag it with"))
	}
	if o.Parent != "" && o.Name == o.Parent {
		return fail(fmt.Errorf("a branch cannot be its own parent %q", o.Parent))
	}
	if b, ok, err := c.FindBranch(ctx, projectID, o.Name); err != nil {
		return Branch{}, err
	} else if ok {
		if err := ownOrShared(projectID, b, o.Tags); err != nil {
			return Branch{}, err
		}
		return c.settle(ctx, projectID, b)
	}

	var parent Branch
	if o.Parent == "" {
		p, err := c.defaultBranch(ctx, projectID)
		if err != nil {
			return fail(fmt.Errorf("find default branch: %w", err))
		}
		parent = p
	} else {
		p, ok, err := c.FindBranch(ctx, projectID, o.Parent)
		if err != nil {
			return Branch{}, err
		}
		if !ok {
			return fail(fmt.Errorf("parent branch %q does not exist", o.Parent))
		}
		parent = p
	}

	var req createBranchRequest
	req.Branch.Name = o.Name
	req.Branch.ParentID = parent.ID
	req.Branch.InitSource = o.InitSource
	if !o.ExpiresAt.IsZero() {
		req.Branch.ExpiresAt = o.ExpiresAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	req.Endpoints = []endpointOptions{{Type: "read_write"}}
	req.AnnotationValue = o.Tags.annotations()

	for attempt := 1; ; attempt++ {
		var out struct {
			Branch     Branch      `json:"branch"`
			Operations []Operation `json:"operations"`
		}
		_, err := c.do(ctx, "POST", projectPath(projectID, "branches"), nil, req, &out)
		if err == nil {
			if err := c.WaitOperations(ctx, projectID, out.Operations); err != nil {
				return fail(err)
			}
			b, err := c.GetBranch(ctx, projectID, out.Branch.ID)
			if err != nil {
				return Branch{}, err
			}
			return b, nil
		}
		// A refused request (400, 401, 404, …) will be refused again. Any
		// other failure may have created the branch anyway (dropped
		// connection, 5xx after the fact) or another replica did (409):
		// look before trying again.
		if st := StatusOf(err); st >= 400 && st < 500 && st != http.StatusConflict &&
			st != http.StatusLocked && st != http.StatusTooManyRequests && st != http.StatusRequestTimeout {
			return fail(fmt.Errorf("create from %q: %w", parent.Name, err))
		}
		b, ok, ferr := c.FindBranch(ctx, projectID, o.Name)
		if ferr == nil && ok {
			if err := ownOrShared(projectID, b, o.Tags); err != nil {
				return Branch{}, err // someone else's, made meanwhile
			}
			return c.settle(ctx, projectID, b)
		}
		if attempt >= createAttempts || ctx.Err() != nil {
			return fail(fmt.Errorf("create from %q (%d attempts): %w", parent.Name, attempt, err))
		}
		if err := retry.Sleep(ctx, c.retry.Backoff(attempt)); err != nil {
			return fail(fmt.Errorf("create from %q: %w", parent.Name, err))
		}
	}
}

// settle waits until an existing branch is ready and makes sure it has a
// read-write endpoint (a create interrupted half-way may have left none).
func (c *Client) settle(ctx context.Context, projectID string, b Branch) (Branch, error) {
	fail := func(err error) (Branch, error) {
		return Branch{}, fmt.Errorf("neon: ensure branch %q in project %s: %w", b.Name, projectID, err)
	}
	var eps struct {
		Endpoints []Endpoint `json:"endpoints"`
	}
	if _, err := c.do(ctx, "GET", projectPath(projectID, "branches", b.ID, "endpoints"), nil, nil, &eps); err != nil {
		return fail(fmt.Errorf("list endpoints: %w", err))
	}
	hasRW := false
	for _, ep := range eps.Endpoints {
		if ep.Type == "read_write" {
			hasRW = true
		}
	}
	if !hasRW {
		body := map[string]any{"endpoint": map[string]any{"branch_id": b.ID, "type": "read_write"}}
		var out struct {
			Operations []Operation `json:"operations"`
		}
		_, err := c.do(ctx, "POST", projectPath(projectID, "endpoints"), nil, body, &out)
		if err != nil && StatusOf(err) != http.StatusConflict { // 409: someone added it meanwhile
			return fail(fmt.Errorf("add read-write endpoint: %w", err))
		}
		if err := c.WaitOperations(ctx, projectID, out.Operations); err != nil {
			return fail(err)
		}
	}
	wait := c.pollMin
	for {
		if b.CurrentState == "ready" || b.CurrentState == "archived" {
			return b, nil
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return fail(fmt.Errorf("waiting for state ready (is %s): %w", b.CurrentState, err))
		}
		wait = min(wait*2, c.pollMax)
		nb, err := c.GetBranch(ctx, projectID, b.ID)
		if err != nil {
			return Branch{}, err
		}
		b = nb
	}
}

// DeleteBranch deletes a branch by id and waits for Neon to finish. A branch
// that does not exist (any more) is not an error.
func (c *Client) DeleteBranch(ctx context.Context, projectID, branchID string) error {
	var out struct {
		Operations []Operation `json:"operations"`
	}
	_, err := c.do(ctx, "DELETE", projectPath(projectID, "branches", branchID), nil, nil, &out)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("neon: delete branch %s in project %s: %w", branchID, projectID, err)
	}
	if err := c.WaitOperations(ctx, projectID, out.Operations); err != nil {
		return fmt.Errorf("neon: delete branch %s in project %s: %w", branchID, projectID, err)
	}
	return nil
}

// DeleteBranchNamed deletes the branch called name, if there is one and
// deploybot made it for tags; a branch it did not make is left alone and
// reported as a *NotOwnedError. When that was the last branch made from a
// shared schema-only root, the root goes too: nothing of the bot's stays
// behind once no preview or test needs it.
func (c *Client) DeleteBranchNamed(ctx context.Context, projectID, name string, tags Tags) error {
	b, ok, err := c.FindBranch(ctx, projectID, name)
	if err != nil || !ok {
		return err
	}
	if err := own(projectID, b, tags); err != nil {
		return err
	}
	if err := c.DeleteBranch(ctx, projectID, b.ID); err != nil {
		return err
	}
	c.dropUnusedSchemaRoot(ctx, projectID, b.ParentID)
	return nil
}

// dropUnusedSchemaRoot deletes branch id if it is a shared schema-only root
// no branch is made from any more. It is tidying, not a duty: when Neon
// refuses (a branch was made from it meanwhile) or cannot answer, the root
// stays for the next one (EnsureBranch renews it when stale).
func (c *Client) dropUnusedSchemaRoot(ctx context.Context, projectID, id string) {
	if id == "" {
		return
	}
	bs, err := c.listBranches(ctx, projectID, "")
	if err != nil {
		return
	}
	var root *Branch
	for i, b := range bs {
		switch {
		case b.ParentID == id:
			return // still in use
		case b.ID == id:
			root = &bs[i]
		}
	}
	if root == nil || root.ParentID != "" || root.Annotations[AnnotationCreator] != CreatorValue || root.Annotations[AnnotationPurpose] != PurposeSchemaRoot {
		return
	}
	_ = c.DeleteBranch(ctx, projectID, root.ID)
}

// ResetBranch replaces the branch's data with the current state of its
// parent (Neon's "reset from parent"), keeping its id, endpoint and
// connection strings, and waits until it is done.
//
// The API description offers this as POST …/branches/{id}/restore with the
// parent as source_branch_id (restore to the parent's head); there is no
// separate reset_to_parent endpoint in it. Schema-only branches have no
// parent and cannot be reset.
//
// Only a branch deploybot made for tags is reset (see NotOwnedError).
func (c *Client) ResetBranch(ctx context.Context, projectID, name string, tags Tags) error {
	fail := func(err error) error {
		return fmt.Errorf("neon: reset branch %q in project %s: %w", name, projectID, err)
	}
	b, ok, err := c.FindBranch(ctx, projectID, name)
	if err != nil {
		return err
	}
	if !ok {
		return fail(errors.New("branch does not exist"))
	}
	if err := own(projectID, b, tags); err != nil {
		return err
	}
	if b.ParentID == "" {
		return fail(errors.New("branch has no parent to reset from"))
	}
	var out struct {
		Operations []Operation `json:"operations"`
	}
	body := map[string]string{"source_branch_id": b.ParentID}
	if _, err := c.do(ctx, "POST", projectPath(projectID, "branches", b.ID, "restore"), nil, body, &out); err != nil {
		return fail(err)
	}
	if err := c.WaitOperations(ctx, projectID, out.Operations); err != nil {
		return fail(err)
	}
	return nil
}
