package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// quirky imitates, in a few lines, what NOTES.md reports about the official
// files: Neon's over-long repeat, Cloudflare's untyped parameters, AND-ed
// credentials and a required body without a schema.
const quirky = `{
 "openapi": "3.0.3",
 "info": {"title": "q", "version": "1"},
 "servers": [{"url": "https://api.example.com/client/v4"}],
 "security": [{"api_email": [], "api_key": []}, {"api_token": []}],
 "paths": {
  "/accounts/{account_id}/workers/scripts/{script_name}": {
   "delete": {
    "parameters": [
     {"in": "path", "name": "account_id", "required": true, "schema": {"$ref": "#/components/schemas/untyped_id"}},
     {"in": "path", "name": "script_name", "required": true, "schema": {"$ref": "#/components/schemas/name"}},
     {"in": "query", "name": "ids", "schema": {"type": "string", "pattern": "^([a-z0-9-]{1,60}(,[a-z0-9-]{1,60}){0,99})?$"}}
    ],
    "requestBody": {"required": true, "content": {"application/json": {}}},
    "security": [{"api_token": []}, {"api_email": [], "api_key": []}],
    "responses": {"200": {"description": "ok"}}
   }
  },
  "/unused": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/unused"}}}}}}}
 },
 "components": {
  "schemas": {
   "untyped_id": {"description": "Identifier", "maxLength": 32},
   "name": {"allOf": [{"$ref": "#/components/schemas/name_base"}]},
   "name_base": {"type": "string", "pattern": "^[a-z0-9_][a-z0-9-_]*$"},
   "unused": {"type": "object"}
  },
  "securitySchemes": {
   "api_email": {"in": "header", "name": "X-Auth-Email", "type": "apiKey"},
   "api_key": {"in": "header", "name": "X-Auth-Key", "type": "apiKey"},
   "api_token": {"scheme": "bearer", "type": "http"}
  }
 }
}`

func TestSubsetAppliesWorkarounds(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(quirky), &doc); err != nil {
		t.Fatal(err)
	}
	sub, fixes, err := Subset(doc, []string{"/accounts/{account_id}/workers/scripts/{script_name}"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fixes: %q", fixes)
	schemas := sub["components"].(map[string]any)["schemas"].(map[string]any)
	if _, ok := schemas["unused"]; ok {
		t.Error("unreferenced component copied")
	}
	if _, ok := schemas["name_base"]; !ok {
		t.Error("transitively referenced component name_base missing")
	}
	if schemas["untyped_id"].(map[string]any)["type"] != "string" {
		t.Error("untyped parameter schema not given type string")
	}

	data, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := apispec.Parse("quirky", data)
	if err != nil {
		t.Fatalf("subset does not load: %v", err)
	}
	v := spec.Validator()

	// A real client deletes a worker with only an API token and no body.
	req := httptest.NewRequest("DELETE", "/client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/workers/scripts/my-worker?ids=a,b", nil)
	req.Header.Set("Authorization", "Bearer tok")
	if err := v.Check(req); err != nil {
		t.Fatalf("token-only DELETE without body rejected: %v", err)
	}
	// The key alone (without the e-mail) is one credential form too.
	req = httptest.NewRequest("DELETE", "/accounts/023e/workers/scripts/my-worker", nil)
	req.Header.Set("X-Auth-Key", "k")
	if err := v.Check(req); err != nil {
		t.Fatalf("key-only DELETE rejected: %v", err)
	}
	// No credential at all is still refused, and so is a bad script name.
	req = httptest.NewRequest("DELETE", "/accounts/023e/workers/scripts/my-worker", nil)
	if err := v.Check(req); err == nil {
		t.Fatal("DELETE without credentials accepted")
	}
	req = httptest.NewRequest("DELETE", "/accounts/023e/workers/scripts/Bad.Name", nil)
	req.Header.Set("Authorization", "Bearer tok")
	if err := v.Check(req); err == nil || !strings.Contains(err.Error(), "script_name") {
		t.Fatalf("bad script name: %v, want an error naming script_name", err)
	}
}

func TestSubsetRejectsUnknownPath(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(quirky), &doc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Subset(doc, []string{"/nope"}); err == nil {
		t.Fatal("unknown path accepted")
	}
}

// TestRealCloudflareWorkerScript runs the generator on the official
// Cloudflare description when the fixtures are on this machine.
func TestRealCloudflareWorkerScript(t *testing.T) {
	const src = "/work/shared/fixtures/openapi/cloudflare-v4.json"
	if _, err := os.Stat(src); err != nil {
		t.Skip("fixtures not present:", err)
	}
	if testing.Short() {
		t.Skip("loads a 4 MB description")
	}
	dir := t.TempDir()
	paths := dir + "/cloudflare.paths"
	if err := os.WriteFile(paths, []byte("/accounts/{account_id}/workers/scripts/{script_name}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := dir + "/cloudflare.json"
	if err := generate(paths, src, "cloudflare-v4.json", out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := apispec.Parse("cloudflare", data)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("DELETE", "/client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/workers/scripts/codex-web-preview-7", nil)
	req.Header.Set("Authorization", "Bearer tok")
	if err := spec.Validator().Check(req); err != nil {
		t.Fatalf("worker DELETE with a token rejected: %v", err)
	}
	if !bytes.Contains(data, []byte("cloudflare-v4.json")) {
		t.Error("subset header does not name its source")
	}
}
