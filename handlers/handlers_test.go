package handlers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/palantir/go-githubapp/githubapp"

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
		}
	})
}
