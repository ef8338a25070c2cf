package ghsim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ForkOwner owns the fork that fork pull requests come from; it is also
// their author.
const ForkOwner = "outside-contributor"

// repo is a sandbox repository: files in commits, branches, and what the
// API added to it.
type repo struct {
	id            int64
	owner, name   string
	defaultBranch string
	branches      map[string]string // name → commit SHA
	commits       map[string]*commit
	commitOrder   []string
	updates       []refUpdate // every branch move, for push events
	lastIssue     int
	pulls         map[int]*pull
	perms         map[string]string // login → role
	private       bool              // hidden from whoever has no role (SetPrivate)
	checkRuns     []*checkRun
	comments      []*comment
	deployments   []*deployment
	// uninstalled: the App's installation does not cover this repository
	// (SetInstalled).
	uninstalled bool
}

func (rp *repo) fullName() string { return rp.owner + "/" + rp.name }

type commit struct {
	sha     string
	parents []string
	message string
	author  string
	time    time.Time
	tree    map[string]string // path → content
}

type refUpdate struct {
	branch        string
	before, after string
	commits       []string // new commits, oldest first
	pusher        string
}

type pull struct {
	id                                   int64
	number                               int
	title, author                        string
	head, base                           string // branch names
	headSHA                              string
	prevHead                             string // head before the last PushPR
	headRepo                             string // full name
	fork, draft                          bool
	state                                string // open, closed
	merged                               bool
	mergeSHA                             string
	created, updated, closedAt, mergedAt time.Time
}

func (s *Server) repo(fullName string) (*repo, error) {
	rp := s.repos[strings.ToLower(fullName)]
	if rp == nil {
		return nil, fmt.Errorf("ghsim: no repository %q", fullName)
	}
	return rp, nil
}

// lookupRepo finds the repository of an API request; nil if unknown or
// out of the installation's sight (GitHub answers both with 404).
func (s *Server) lookupRepo(owner, name string) *repo {
	rp := s.repos[strings.ToLower(owner+"/"+name)]
	if rp == nil || rp.uninstalled {
		return nil
	}
	return rp
}

// CreateRepo creates owner/name with an empty initial commit on
// defaultBranch (e.g. "main"). The App is installed on it.
func (s *Server) CreateRepo(owner, name, defaultBranch string) error {
	if owner == "" || name == "" || defaultBranch == "" {
		return fmt.Errorf("ghsim: create repository: owner, name and default branch are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(owner + "/" + name)
	if s.repos[key] != nil {
		return fmt.Errorf("ghsim: repository %s/%s exists", owner, name)
	}
	rp := &repo{
		id:            s.newID(),
		owner:         owner,
		name:          name,
		defaultBranch: defaultBranch,
		branches:      map[string]string{},
		commits:       map[string]*commit{},
		pulls:         map[int]*pull{},
		perms:         map[string]string{owner: "admin"},
	}
	s.repos[key] = rp
	s.repoOrder = append(s.repoOrder, rp)
	sha := s.addCommit(rp, "", nil, map[string]string{}, "Initial commit", owner)
	s.moveBranch(rp, defaultBranch, sha, owner)
	return nil
}

// Commit commits files (path → content; added or replaced, others kept) on
// branch of repo ("owner/name") and returns the new commit's SHA. A new
// branch starts from the default branch. The SHA is the SHA-1 of the
// commit's content, parent and position, so the same script gives the same
// SHAs.
func (s *Server) Commit(repoName, branch string, files map[string]string, message string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return "", err
	}
	parent, ok := rp.branches[branch]
	if !ok {
		parent = rp.branches[rp.defaultBranch]
	}
	sha := s.addCommit(rp, parent, nil, files, message, rp.owner)
	s.moveBranch(rp, branch, sha, rp.owner)
	return sha, nil
}

// addCommit stores a commit whose tree is parent's with files applied.
// Callers hold s.mu.
func (s *Server) addCommit(rp *repo, parent string, extraParents []string, files map[string]string, message, author string) string {
	tree := map[string]string{}
	if p := rp.commits[parent]; p != nil {
		for k, v := range p.tree {
			tree[k] = v
		}
	}
	for k, v := range files {
		tree[strings.TrimPrefix(k, "/")] = v
	}
	parents := []string{}
	if parent != "" {
		parents = append(parents, parent)
	}
	parents = append(parents, extraParents...)
	h := sha1.New()
	fmt.Fprintf(h, "commit %d\ntree %s\n", len(rp.commitOrder), treeHash(tree))
	for _, p := range parents {
		fmt.Fprintf(h, "parent %s\n", p)
	}
	fmt.Fprintf(h, "author %s\n\n%s", author, message)
	sha := hex.EncodeToString(h.Sum(nil))
	rp.commits[sha] = &commit{sha: sha, parents: parents, message: message, author: author, time: s.now(), tree: tree}
	rp.commitOrder = append(rp.commitOrder, sha)
	return sha
}

func treeHash(tree map[string]string) string {
	paths := make([]string, 0, len(tree))
	for p := range tree {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha1.New()
	for _, p := range paths {
		c := sha1.Sum([]byte(tree[p]))
		fmt.Fprintf(h, "%s\x00%x\n", p, c)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// moveBranch points branch at sha and records the update for push events.
func (s *Server) moveBranch(rp *repo, branch, sha, pusher string) {
	before := rp.branches[branch]
	rp.branches[branch] = sha
	rp.updates = append(rp.updates, refUpdate{branch: branch, before: before, after: sha, commits: newCommits(rp, before, sha), pusher: pusher})
}

// newCommits lists the commits reachable from after but not from before,
// oldest first (first-parent walk, enough for the sandbox's histories).
func newCommits(rp *repo, before, after string) []string {
	seen := map[string]bool{}
	for c := before; c != ""; {
		seen[c] = true
		cm := rp.commits[c]
		if cm == nil || len(cm.parents) == 0 {
			break
		}
		c = cm.parents[0]
	}
	var out []string
	for c := after; c != "" && !seen[c]; {
		out = append(out, c)
		cm := rp.commits[c]
		if cm == nil || len(cm.parents) == 0 {
			break
		}
		c = cm.parents[0]
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// isAncestor reports whether anc is reachable from c.
func isAncestor(rp *repo, anc, c string) bool {
	stack := []string{c}
	seen := map[string]bool{}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if x == anc {
			return true
		}
		if seen[x] {
			continue
		}
		seen[x] = true
		if cm := rp.commits[x]; cm != nil {
			stack = append(stack, cm.parents...)
		}
	}
	return false
}

// resolve turns a ref (full or short SHA, branch, refs/heads/…,
// refs/pull/N/head) into a commit SHA.
func (rp *repo) resolve(ref string) (string, bool) {
	if rp.commits[ref] != nil {
		return ref, true
	}
	name := strings.TrimPrefix(ref, "refs/heads/")
	if sha, ok := rp.branches[name]; ok {
		return sha, true
	}
	var n int
	if _, err := fmt.Sscanf(ref, "refs/pull/%d/head", &n); err == nil {
		if p := rp.pulls[n]; p != nil {
			return p.headSHA, true
		}
	}
	if len(ref) >= 7 && len(ref) < 40 {
		var found string
		for sha := range rp.commits {
			if strings.HasPrefix(sha, ref) {
				if found != "" {
					return "", false // ambiguous
				}
				found = sha
			}
		}
		return found, found != ""
	}
	return "", false
}

// OpenPR opens a pull request from branch head into base and returns its
// number. With fork, head is taken out of the repository into the fork
// ForkOwner/<name> (commit it with Commit first), as a contributor's
// branch would be; ForkOwner is then the author.
func (s *Server) OpenPR(repoName, head, base, title string, fork, draft bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return 0, err
	}
	sha, ok := rp.branches[head]
	if !ok {
		return 0, fmt.Errorf("ghsim: open pull request in %s: no branch %q", repoName, head)
	}
	if _, ok := rp.branches[base]; !ok {
		return 0, fmt.Errorf("ghsim: open pull request in %s: no base branch %q", repoName, base)
	}
	if head == base && !fork {
		return 0, fmt.Errorf("ghsim: open pull request in %s: head and base are both %q", repoName, head)
	}
	p := &pull{
		id: s.newID(), title: title, head: head, base: base, headSHA: sha,
		headRepo: rp.fullName(), author: rp.owner, fork: fork, draft: draft,
		state: "open", created: s.now(), updated: s.now(),
	}
	if fork {
		p.headRepo = ForkOwner + "/" + rp.name
		p.author = ForkOwner
		delete(rp.branches, head)
	}
	rp.lastIssue++
	p.number = rp.lastIssue
	rp.pulls[p.number] = p
	return p.number, nil
}

// PushPR commits files onto pull request number's head branch (in the fork
// for fork pull requests) and returns the new head SHA.
func (s *Server) PushPR(repoName string, number int, files map[string]string, message string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, p, err := s.openPull(repoName, number, "push to")
	if err != nil {
		return "", err
	}
	sha := s.addCommit(rp, p.headSHA, nil, files, message, p.author)
	p.prevHead = p.headSHA
	if !p.fork {
		s.moveBranch(rp, p.head, sha, p.author)
	}
	p.headSHA = sha
	p.updated = s.now()
	return sha, nil
}

// SetDraft marks pull request number as draft or ready for review.
func (s *Server) SetDraft(repoName string, number int, draft bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, p, err := s.pull(repoName, number)
	if err != nil {
		return err
	}
	p.draft = draft
	p.updated = s.now()
	return nil
}

// ClosePR closes pull request number. With merged, a merge commit (the
// base's tree with the head's files applied) is added to the base branch;
// its SHA is returned.
func (s *Server) ClosePR(repoName string, number int, merged bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, p, err := s.openPull(repoName, number, "close")
	if err != nil {
		return "", err
	}
	p.state = "closed"
	p.closedAt = s.now()
	p.updated = s.now()
	if !merged {
		return "", nil
	}
	headTree := rp.commits[p.headSHA].tree
	base := rp.branches[p.base]
	sha := s.addCommit(rp, base, []string{p.headSHA}, headTree,
		fmt.Sprintf("Merge pull request #%d from %s\n\n%s", number, headLabel(p), p.title), rp.owner)
	s.moveBranch(rp, p.base, sha, rp.owner)
	p.merged = true
	p.mergeSHA = sha
	p.mergedAt = s.now()
	return sha, nil
}

// ReopenPR reopens a closed, unmerged pull request, as GitHub allows.
func (s *Server) ReopenPR(repoName string, number int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, p, err := s.pull(repoName, number)
	if err != nil {
		return err
	}
	if p.state != "closed" || p.merged {
		return fmt.Errorf("ghsim: reopen %s#%d: only a closed, unmerged pull request can be reopened", repoName, number)
	}
	p.state = "open"
	p.closedAt = time.Time{}
	p.updated = s.now()
	return nil
}

func headLabel(p *pull) string {
	return strings.SplitN(p.headRepo, "/", 2)[0] + ":" + p.head
}

func (s *Server) pull(repoName string, number int) (*repo, *pull, error) {
	rp, err := s.repo(repoName)
	if err != nil {
		return nil, nil, err
	}
	p := rp.pulls[number]
	if p == nil {
		return nil, nil, fmt.Errorf("ghsim: no pull request %s#%d", repoName, number)
	}
	return rp, p, nil
}

// openPull is pull for what only an open pull request allows (verb says
// what, for the error).
func (s *Server) openPull(repoName string, number int, verb string) (*repo, *pull, error) {
	rp, p, err := s.pull(repoName, number)
	if err == nil && p.state != "open" {
		err = fmt.Errorf("ghsim: %s %s#%d: pull request is closed", verb, repoName, number)
	}
	return rp, p, err
}

// SetPermission gives user a role on repo: admin, maintain, write, triage
// or read; "" removes it.
func (s *Server) SetPermission(repoName, user, role string) error {
	switch role {
	case "", "admin", "maintain", "write", "triage", "read":
	default:
		return fmt.Errorf("ghsim: set permission of %q on %s: unknown role %q", user, repoName, role)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return err
	}
	if role == "" {
		delete(rp.perms, user)
	} else {
		rp.perms[user] = role
	}
	return nil
}

// AddComment adds a comment by user on issue or pull request number, as a
// person would in the web UI, and returns its ID.
func (s *Server) AddComment(repoName string, number int, user, body string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return 0, err
	}
	if rp.pulls[number] == nil {
		return 0, fmt.Errorf("ghsim: comment on %s#%d: no such pull request", repoName, number)
	}
	c := s.addComment(rp, number, user, body)
	return c.id, nil
}
