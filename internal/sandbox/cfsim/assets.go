package cfsim

import (
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
)

// assetSession is one assets upload session (POST .../assets-upload-session).
type assetSession struct {
	script   string
	manifest map[string]string // path → hash
	sizes    map[string]int64  // hash → size
	missing  map[string]bool   // hashes still to upload
	// completion is the token handed out once nothing is missing.
	completion string
}

const maxAssetSize = 25 << 20

// createAssetSession registers a manifest and answers which files the
// account does not have yet, in buckets, with a token for uploading them.
// The Worker need not exist yet: a first deploy uploads assets before the
// script.
func (s *Server) createAssetSession(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeAPIError(w, http.StatusBadRequest, codeContentType, "request body must be application/json")
		return
	}
	var body struct {
		Manifest map[string]*struct {
			Hash *string `json:"hash"`
			Size *int64  `json:"size"`
		} `json:"manifest"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "request body: "+err.Error())
		return
	}
	if body.Manifest == nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `request body: required field "manifest" is missing`)
		return
	}
	sess := &assetSession{
		script:   r.PathValue("script_name"),
		manifest: map[string]string{},
		sizes:    map[string]int64{},
		missing:  map[string]bool{},
	}
	for path, e := range body.Manifest {
		switch {
		case !strings.HasPrefix(path, "/"):
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("manifest: path %q must start with /", path))
			return
		case e == nil || e.Hash == nil || *e.Hash == "" || e.Size == nil:
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("manifest[%q]: hash and size are required", path))
			return
		case *e.Size < 0 || *e.Size > maxAssetSize:
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("manifest[%q]: size %d is outside 0..%d", path, *e.Size, maxAssetSize))
			return
		}
		if prev, ok := sess.sizes[*e.Hash]; ok && prev != *e.Size {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("manifest: hash %s is listed with two sizes", *e.Hash))
			return
		}
		sess.manifest[path] = *e.Hash
		sess.sizes[*e.Hash] = *e.Size
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for h := range sess.sizes {
		if _, ok := s.assetStore[h]; !ok {
			sess.missing[h] = true
			missing = append(missing, h)
		}
	}
	sort.Strings(missing)
	buckets := [][]string{}
	for len(missing) > 0 {
		n := min(s.bucket, len(missing))
		buckets = append(buckets, missing[:n])
		missing = missing[n:]
	}
	if len(buckets) == 0 {
		sess.completion = newToken("completion")
		s.completions[sess.completion] = sess
		writeResult(w, http.StatusOK, map[string]any{"jwt": sess.completion, "buckets": buckets})
		return
	}
	tok := newToken("upload")
	s.uploadTokens[tok] = sess
	writeResult(w, http.StatusOK, map[string]any{"jwt": tok, "buckets": buckets})
}

// uploadAssets receives one bucket: a multipart form whose fields are named
// by hash and hold the base64 content. It is authenticated with the
// session's upload token. The answer completing the session carries the
// completion token (201); earlier ones do not (202).
func (s *Server) uploadAssets(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	sess := s.uploadTokens[tok]
	s.mu.Unlock()
	if sess == nil {
		writeAPIError(w, http.StatusUnauthorized, codeAuth, "Authentication error: assets uploads need the upload session's token as bearer token")
		return
	}
	if r.URL.Query().Get("base64") != "true" {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `query parameter "base64" must be true`)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		writeAPIError(w, http.StatusBadRequest, codeContentType, "assets must be uploaded as multipart/form-data")
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, codeContentType, "malformed multipart body: "+err.Error())
		return
	}
	got := map[string][]byte{}
	types := map[string]string{}
	var order []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, codeContentType, "malformed multipart body: "+err.Error())
			return
		}
		hash := p.FormName()
		// Cloudflare serves each asset with the Content-Type of the part it
		// was uploaded in ("application/null" for none). A part without one
		// (a plain form field) would be served untyped: refused here, to
		// catch the client's mistake (CONFORMANCE.md).
		ct := p.Header.Get("Content-Type")
		if _, _, err := mime.ParseMediaType(ct); err != nil || p.FileName() == "" {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("file %q must be a file part with the Content-Type to serve it with (application/null for none), not %q", hash, ct))
			return
		}
		b64, err := io.ReadAll(io.LimitReader(p, maxAssetSize*2))
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, codeContentType, "malformed multipart body: "+err.Error())
			return
		}
		size, ok := sess.sizes[hash]
		if !ok {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("file %q is not in the session's manifest", hash))
			return
		}
		content, err := base64.StdEncoding.DecodeString(string(b64))
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("file %s is not valid base64", hash))
			return
		}
		if int64(len(content)) != size {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("file %s is %d bytes, the manifest says %d", hash, len(content), size))
			return
		}
		got[hash] = content
		types[hash] = ct
		order = append(order, hash)
	}
	if len(got) == 0 {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "no files in the upload")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range order {
		if _, dup := s.assetStore[h]; !dup {
			s.assetUploads = append(s.assetUploads, h)
		}
		s.assetStore[h] = got[h]
		s.assetTypes[h] = types[h]
		delete(sess.missing, h)
	}
	if len(sess.missing) > 0 {
		writeResult(w, http.StatusAccepted, map[string]any{})
		return
	}
	if sess.completion == "" {
		sess.completion = newToken("completion")
		s.completions[sess.completion] = sess
	}
	writeResult(w, http.StatusCreated, map[string]any{"jwt": sess.completion})
}
