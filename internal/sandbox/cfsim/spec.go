package cfsim

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// loadSpec returns the Cloudflare description the simulator validates
// against: the embedded subset (apispec "cloudflare") with two errors of the
// 2024-08 snapshot corrected, each of which would make the validator refuse
// requests the live API accepts and cloudflare-go sends:
//
//   - the DNS record operations declare only the X-Auth-Email + X-Auth-Key
//     credential, while the API accepts API tokens there (the "DNS Edit"
//     token permission); api_token is added as an alternative, as the
//     document's top-level security already allows;
//   - dns-records_dns-record, used both as the create/update request body and
//     as the response, carries the response's required list (id, proxiable,
//     created_on, modified_on, …) on its oneOf wrapper, and kin-openapi
//     cannot see that the branches mark most of them readOnly; the wrapper's
//     list is dropped, each record type's branch keeps its own (type, name,
//     content).
//
// Parsed once per process.
var loadSpec = sync.OnceValues(func() (*apispec.Spec, error) {
	base, err := apispec.Load("cloudflare")
	if err != nil {
		return nil, fmt.Errorf("cfsim: %w", err)
	}
	raw, err := json.Marshal(base.Doc())
	if err != nil {
		return nil, fmt.Errorf("cfsim: re-encode description: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("cfsim: re-encode description: %w", err)
	}
	if err := correctSpec(doc); err != nil {
		return nil, fmt.Errorf("cfsim: correct description: %w", err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return apispec.Parse("cloudflare", out)
})

func correctSpec(doc map[string]any) error {
	paths, _ := doc["paths"].(map[string]any)
	fixed := 0
	for _, p := range []string{"/zones/{zone_id}/dns_records", "/zones/{zone_id}/dns_records/{dns_record_id}"} {
		item, _ := paths[p].(map[string]any)
		for _, v := range item {
			op, ok := v.(map[string]any)
			if !ok {
				continue
			}
			sec, _ := op["security"].([]any)
			hasToken := false
			for _, req := range sec {
				if m, _ := req.(map[string]any); m != nil && m["api_token"] != nil {
					hasToken = true
				}
			}
			if !hasToken {
				op["security"] = append(sec, map[string]any{"api_token": []any{}})
				fixed++
			}
		}
	}
	if fixed == 0 {
		return fmt.Errorf("no DNS operation lacked api_token; the description changed, revisit loadSpec")
	}
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	rec, _ := schemas["dns-records_dns-record"].(map[string]any)
	if rec == nil || rec["oneOf"] == nil || rec["required"] == nil {
		return fmt.Errorf("dns-records_dns-record is no longer a oneOf with a required list; revisit loadSpec")
	}
	delete(rec, "required")
	return nil
}
