package cfsim

import (
	"fmt"
	"math"
	"net/http"
)

// A Worker's versions and deployments.

func versionShort(v *version) map[string]any {
	return map[string]any{
		"id":     v.ID,
		"number": v.Number,
		"metadata": map[string]any{
			"author_email": "deploybot@example.com",
			"author_id":    "0123456789abcdef0123456789abcdef",
			"created_on":   timestamp(v.CreatedOn),
			"modified_on":  timestamp(v.CreatedOn),
			"source":       v.Source,
			"hasPreview":   false,
		},
	}
}

// bindingJSON is a binding as the API shows it: secret values never leave.
func bindingJSON(b binding) map[string]any {
	out := map[string]any{}
	for k, v := range b.raw {
		out[k] = v
	}
	if b.Type == "secret_text" {
		delete(out, "text")
	}
	out["name"], out["type"] = b.Name, b.Type
	return out
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request, sc *script) {
	page, perPage, ok := pageParams(w, r, 10, 100)
	if !ok {
		return
	}
	all := make([]map[string]any, 0, len(sc.Versions))
	for i := len(sc.Versions) - 1; i >= 0; i-- {
		all = append(all, versionShort(sc.Versions[i]))
	}
	if r.URL.Query().Get("deployable") == "true" {
		// "Ignores pagination."
		writeList(w, map[string]any{"items": all}, &resultInfo{Page: 1, PerPage: len(all), Count: len(all), TotalCount: len(all), TotalPages: 1})
		return
	}
	items, info := paginate(all, page, perPage)
	writeList(w, map[string]any{"items": items}, info)
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request, sc *script) {
	v := sc.version(r.PathValue("version_id"))
	if v == nil {
		writeAPIError(w, http.StatusNotFound, codeNotFound, "Version not found.")
		return
	}
	out := versionShort(v)
	bs := make([]map[string]any, 0, len(v.Bindings))
	for _, b := range v.Bindings {
		bs = append(bs, bindingJSON(b))
	}
	flags := v.CompatibilityFlags
	if flags == nil {
		flags = []string{}
	}
	out["resources"] = map[string]any{
		"bindings": bs,
		"script": map[string]any{
			"etag":               v.Etag,
			"handlers":           []string{"fetch"},
			"last_deployed_from": "api",
		},
		"script_runtime": map[string]any{
			"compatibility_date":  v.CompatibilityDate,
			"compatibility_flags": flags,
			"usage_model":         "bundled",
		},
	}
	writeResult(w, http.StatusOK, out)
}

func deploymentJSON(d *deployment) map[string]any {
	out := map[string]any{
		"id":           d.ID,
		"created_on":   timestamp(d.CreatedOn),
		"source":       d.Source,
		"strategy":     "percentage",
		"author_email": "deploybot@example.com",
		"versions":     d.Versions,
	}
	if d.Message != "" {
		out["annotations"] = map[string]any{"workers/message": d.Message}
	}
	return out
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request, sc *script) {
	// "The first deployment in the list is the latest deployment actively
	// serving traffic."
	out := make([]map[string]any, 0, len(sc.Deployments))
	for i := len(sc.Deployments) - 1; i >= 0; i-- {
		out = append(out, deploymentJSON(sc.Deployments[i]))
	}
	writeResult(w, http.StatusOK, map[string]any{"deployments": out})
}

// It runs under onScript: the account checked, the lock held, the
// Worker found.
func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request, sc *script) {
	var body struct {
		Strategy    string            `json:"strategy"`
		Versions    []deployedVersion `json:"versions"`
		Annotations struct {
			Message string `json:"workers/message"`
		} `json:"annotations"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "request body: "+err.Error())
		return
	}
	if len(body.Versions) == 0 || len(body.Versions) > 2 {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "a deployment has one or two versions")
		return
	}
	sum := 0.0
	for _, v := range body.Versions {
		sum += v.Percentage
	}
	if math.Abs(sum-100) > 0.001 {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("version percentages must add up to 100, not %g", sum))
		return
	}
	if len(body.Versions) == 2 && body.Versions[0].VersionID == body.Versions[1].VersionID {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "a version appears twice in the deployment")
		return
	}
	for _, v := range body.Versions {
		if sc.version(v.VersionID) == nil {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("version %s does not belong to Worker %s", v.VersionID, sc.Name))
			return
		}
	}
	d := &deployment{ID: s.newUUID(), CreatedOn: s.now(), Source: "api", Versions: body.Versions, Message: body.Annotations.Message}
	sc.Deployments = append(sc.Deployments, d)
	sc.ModifiedOn = d.CreatedOn
	writeResult(w, http.StatusOK, deploymentJSON(d))
}
