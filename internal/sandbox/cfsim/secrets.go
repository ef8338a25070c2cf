package cfsim

import (
	"fmt"
	"mime"
	"net/http"
	"time"
)

// A Worker's secrets: each change is a new version of the live one.

// putSecret implements PUT .../secrets (absent from the description): the
// secret is set on a copy of the live version, which is deployed.
// It runs under onScript: the account checked, the lock held, the
// Worker found.
func (s *Server) putSecret(w http.ResponseWriter, r *http.Request, sc *script) {
	var body struct {
		Name *string `json:"name"`
		Text *string `json:"text"`
		Type *string `json:"type"`
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeAPIError(w, http.StatusBadRequest, codeContentType, "request body must be application/json")
		return
	}
	if err := decodeJSON(r, &body); err != nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "request body: "+err.Error())
		return
	}
	switch {
	case body.Name == nil || *body.Name == "":
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `request body: required field "name" is missing`)
		return
	case body.Type == nil || *body.Type != "secret_text":
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `request body: field "type" must be "secret_text"`)
		return
	case body.Text == nil:
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `request body: required field "text" is missing`)
		return
	}
	live := sc.live()
	if live == nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "the Worker has no deployed version to add a secret to")
		return
	}
	nv := cloneVersion(live, s.now())
	replaced := false
	for i, b := range nv.Bindings {
		if b.Name != *body.Name {
			continue
		}
		if b.Type != "secret_text" {
			writeAPIError(w, http.StatusBadRequest, codeBindingInUse, fmt.Sprintf("Binding name '%s' already in use by a %s binding", b.Name, b.Type))
			return
		}
		nv.Bindings[i] = secretBinding(*body.Name, *body.Text)
		replaced = true
	}
	if !replaced {
		nv.Bindings = append(nv.Bindings, secretBinding(*body.Name, *body.Text))
	}
	if code, msg := s.checkEnvVars(nv.Bindings); code != 0 {
		writeAPIError(w, http.StatusBadRequest, code, msg)
		return
	}
	s.addVersion(sc, nv, "Secret Change")
	writeResult(w, http.StatusOK, map[string]any{"name": *body.Name, "type": "secret_text"})
}

func secretBinding(name, text string) binding {
	return binding{Type: "secret_text", Name: name, Text: text, raw: map[string]any{"name": name, "type": "secret_text", "text": text}}
}

func cloneVersion(v *version, now time.Time) *version {
	nv := *v
	nv.Bindings = append([]binding(nil), v.Bindings...)
	nv.CreatedOn = now
	nv.Source = "api"
	return &nv
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request, sc *script) {
	out := []map[string]any{}
	if v := sc.live(); v != nil {
		for _, b := range v.Bindings {
			if b.Type == "secret_text" {
				out = append(out, map[string]any{"name": b.Name, "type": b.Type})
			}
		}
	}
	writeResult(w, http.StatusOK, out)
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request, sc *script) {
	if v := sc.live(); v != nil {
		for _, b := range v.Bindings {
			if b.Type == "secret_text" && b.Name == r.PathValue("secret_name") {
				writeResult(w, http.StatusOK, map[string]any{"name": b.Name, "type": b.Type})
				return
			}
		}
	}
	writeAPIError(w, http.StatusNotFound, codeNotFound, "Secret not found.")
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request, sc *script) {
	live := sc.live()
	name := r.PathValue("secret_name")
	if live != nil {
		nv := cloneVersion(live, s.now())
		for i, b := range nv.Bindings {
			if b.Type == "secret_text" && b.Name == name {
				nv.Bindings = append(nv.Bindings[:i], nv.Bindings[i+1:]...)
				s.addVersion(sc, nv, "Secret Change")
				writeResult(w, http.StatusOK, map[string]any{"name": name, "type": "secret_text"})
				return
			}
		}
	}
	writeAPIError(w, http.StatusNotFound, codeNotFound, "Secret not found.")
}
