package handlers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palantir/go-githubapp/githubapp"

	"github.com/revelations-studio/deploybot/internal/gitref"
	"github.com/revelations-studio/deploybot/internal/intake"
	"github.com/revelations-studio/deploybot/internal/intent"
)

// recorder is an Intake that keeps what it was given; the real one is tested
// end to end in internal/server.
type recorder struct{ got []intent.Intent }

func (r *recorder) Accept(_ context.Context, in intent.Intent) (intake.Receipt, error) {
	r.got = append(r.got, in)
	return intake.Receipt{JobID: int64(len(r.got))}, nil
}

// FuzzHandle feeds arbitrary bodies to every handler: none may panic, a body
// that is not JSON must be a BadPayloadError (400), and any intent produced
// must name its delivery and installation.
func FuzzHandle(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "github-webhooks", "*", "*.json"))
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.Base(filepath.Dir(path)), b)
	}
	f.Add("pull_request", []byte(`{"installation":{"id":1},"action":"opened","pull_request":null}`))
	f.Add("installation", []byte(`{"installation":{"id":1},"action":"created","repositories":[null]}`))
	f.Add("push", []byte(`{"installation":{"id":1},"ref":"refs/heads/x","head_commit":null}`))
	f.Add("issue_comment", []byte(`{"installation":{"id":1},"action":"created","issue":{"pull_request":{}},"comment":{"body":"/x"}}`))

	f.Fuzz(func(t *testing.T, event string, payload []byte) {
		rec := &recorder{}
		byEvent := map[string]githubapp.EventHandler{}
		for _, h := range All(rec) {
			for _, e := range h.Handles() {
				byEvent[e] = h
			}
		}
		h, ok := byEvent[event]
		if !ok {
			return
		}
		ctx := githubapp.InitializeResponder(context.Background())
		err := h.Handle(ctx, event, "fuzz-delivery", payload)
		if err != nil {
			if _, ok := errors.AsType[*BadPayloadError](err); !ok {
				t.Fatalf("error is not a BadPayloadError: %v", err)
			}
			return
		}
		if githubapp.GetResponder(ctx) == nil {
			t.Fatal("handled without setting a response")
		}
		for _, in := range rec.got {
			m := in.Delivery()
			if m.DeliveryID != "fuzz-delivery" || m.InstallationID == 0 {
				t.Fatalf("intent %s lacks its delivery or installation: %+v", in.Kind(), m)
			}
			for _, b := range branchesOf(in) {
				if err := gitref.CheckBranch(b); err != nil {
					t.Fatalf("intent %s carries a branch git forbids: %v", in.Kind(), err)
				}
			}
		}
	})
}

// branchesOf lists the branch names an intent carries.
func branchesOf(in intent.Intent) []string {
	switch v := in.(type) {
	case intent.PreviewRequested:
		return []string{v.PR.HeadRef, v.PR.BaseRef}
	case intent.PreviewDrafted:
		return []string{v.PR.HeadRef, v.PR.BaseRef}
	case intent.TestRequested:
		return []string{v.Branch}
	case intent.ProductionPush:
		return []string{v.Branch}
	case intent.BranchDeleted:
		return []string{v.Branch}
	}
	return nil
}

// TestForbiddenBranchNames: a delivery naming a branch git forbids is
// refused as a bad payload (400) naming the delivery and the branch, and
// nothing is queued.
func TestForbiddenBranchNames(t *testing.T) {
	for _, tc := range []struct{ event, payload string }{
		{"push", `{"installation":{"id":1},"repository":{"id":1,"name":"r","owner":{"login":"o"},"default_branch":"main"},"ref":"refs/heads/x/../../user","after":"` + strings.Repeat("a", 40) + `"}`},
		{"pull_request", `{"installation":{"id":1},"action":"opened","repository":{"id":1,"name":"r","owner":{"login":"o"}},"pull_request":{"number":5,"head":{"ref":"x/../../user","sha":"` + strings.Repeat("a", 40) + `"},"base":{"ref":"main"},"user":{"login":"u"}}}`},
		{"pull_request", `{"installation":{"id":1},"action":"synchronize","repository":{"id":1,"name":"r","owner":{"login":"o"}},"pull_request":{"number":5,"head":{"ref":"ok"},"base":{"ref":"ma in"},"user":{"login":"u"}}}`},
		{"check_suite", `{"installation":{"id":1},"action":"rerequested","repository":{"id":1,"name":"r","owner":{"login":"o"}},"check_suite":{"id":3,"head_branch":"a..b"}}`},
	} {
		rec := &recorder{}
		var h githubapp.EventHandler
		for _, c := range All(rec) {
			for _, e := range c.Handles() {
				if e == tc.event {
					h = c
				}
			}
		}
		ctx := githubapp.InitializeResponder(context.Background())
		err := h.Handle(ctx, tc.event, "d-123", []byte(tc.payload))
		if _, ok := errors.AsType[*BadPayloadError](err); !ok {
			t.Errorf("%s: got %v, want a BadPayloadError", tc.event, err)
			continue
		}
		if !strings.Contains(err.Error(), "delivery d-123") || !strings.Contains(err.Error(), "branch name") {
			t.Errorf("%s: %q should name the delivery and the branch", tc.event, err)
		}
		if len(rec.got) != 0 {
			t.Errorf("%s: queued %d intents", tc.event, len(rec.got))
		}
	}
}
