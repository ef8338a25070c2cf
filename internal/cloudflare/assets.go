package cloudflare

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/workers"
)

// Limits of Workers static assets (developers.cloudflare.com/workers/platform/limits/#static-assets).
const (
	maxAssetSize  = 25 << 20
	maxAssetFiles = 100_000
)

// asset is one file of an assets directory.
type asset struct {
	path        string // manifest key: "/" + slash-separated path relative to the directory
	file        string // beneath the assets root
	hash        string
	size        int64
	contentType string // what Cloudflare serves it with (assetContentType)
}

// workerJS is Pages' advanced-mode Worker. wrangler refuses to upload it as
// an asset unless an .assetsignore exists (errorOnLegacyPagesWorkerJSAsset):
// it would publish the server's code.
const workerJS = "_worker.js"

// assetsConfig holds the special files wrangler lifts out of the directory
// into the upload's assets configuration.
type assetsConfig struct {
	headers, redirects string
}

// openAssets opens the root that every file of an upload is read through,
// and names the assets folder within it. A build made the folder, so it may
// hold symlinks; the root refuses any that lead out of it.
func openAssets(rootDir, dir string) (*os.Root, string, error) {
	if rootDir == "" {
		rootDir, dir = dir, "."
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return nil, "", fmt.Errorf("open assets folder %s: %w", rootDir, err)
	}
	return root, filepath.ToSlash(filepath.Clean(dir)), nil
}

// readAssets walks dir beneath root and hashes every file. The hash is only
// a content key for deduplication on Cloudflare's side: wrangler uses BLAKE3
// over the base64 content plus the extension, truncated to 32 hex digits;
// SHA-256 over the same input keeps the shape without another dependency
// (the only cost is not sharing cache entries with wrangler uploads).
//
// A symlink is followed when it stays inside the root and refused with the
// file's name otherwise; other special files (fifos, sockets) are skipped.
func readAssets(root *os.Root, dir string) ([]asset, assetsConfig, error) {
	var out []asset
	var cfg assetsConfig
	fsys := root.FS()
	if fi, err := fs.Stat(fsys, dir); err != nil {
		return nil, cfg, fmt.Errorf("assets folder %s: %w%s", dir, err, escapeHint(err))
	} else if !fi.IsDir() {
		return nil, cfg, fmt.Errorf("assets folder %s is not a folder", dir)
	}
	// .assetsignore, at the folder's root, leaves files out by gitignore's
	// rules, as wrangler does.
	ignoreFile := path.Join(dir, ".assetsignore")
	raw, err := fs.ReadFile(fsys, ignoreFile)
	hasIgnore := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, cfg, fmt.Errorf("assets folder %s: %w%s", dir, err, escapeHint(err))
	}
	ignore := parseAssetsIgnore(string(raw))
	err = fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(p, dir+"/")
		if dir == "." {
			rel = p
		}
		if rel == ".assetsignore" || ignore.ignored(rel) {
			return nil
		}
		if !hasIgnore && (rel == workerJS || strings.HasPrefix(rel, workerJS+"/")) {
			return fmt.Errorf("asset %s: uploading a Pages %s as an asset would publish your server-side code. If you do not want it uploaded, add an .assetsignore file to the root of the assets folder containing %q; if you do, add an empty .assetsignore to say so", rel, workerJS, workerJS)
		}
		mode := d.Type()
		if mode&fs.ModeSymlink != 0 {
			fi, err := fs.Stat(fsys, p)
			if err != nil {
				return fmt.Errorf("asset %s: %w%s", rel, err, escapeHint(err))
			}
			mode = fi.Mode().Type()
		}
		if !mode.IsRegular() {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("asset %s: %w%s", rel, err, escapeHint(err))
		}
		switch rel {
		case "_headers":
			cfg.headers = string(b)
			return nil
		case "_redirects":
			cfg.redirects = string(b)
			return nil
		}
		if len(b) > maxAssetSize {
			return fmt.Errorf("asset %s is %d bytes, over the %d byte limit", rel, len(b), maxAssetSize)
		}
		sum := sha256.Sum256([]byte(base64.StdEncoding.EncodeToString(b) + strings.TrimPrefix(path.Ext(rel), ".")))
		out = append(out, asset{path: "/" + rel, file: p, hash: hex.EncodeToString(sum[:])[:32], size: int64(len(b)), contentType: assetContentType(rel)})
		return nil
	})
	if err != nil {
		return nil, cfg, err
	}
	if len(out) > maxAssetFiles {
		return nil, cfg, fmt.Errorf("%d assets, over the limit of %d", len(out), maxAssetFiles)
	}
	return out, cfg, nil
}

// escapeHint explains os.Root's refusal of a path that leads outside it,
// whose error ("path escapes from parent") names no cause.
func escapeHint(err error) string {
	if err != nil && strings.Contains(err.Error(), "escapes") {
		return " (a symlink that leads outside the workspace, or an absolute one: the bot uploads only files the build wrote inside it)"
	}
	return ""
}

// uploadAssets runs an assets upload session for a Worker: register the
// manifest, upload the files the API does not have yet (in the buckets it
// asks for, authenticated with the session's token), and return the
// completion token to put in the upload metadata. Running it again after a
// failure uploads only what is still missing.
func (c *Client) uploadAssets(ctx context.Context, script, rootDir, dir string) (string, assetsConfig, error) {
	root, dir, err := openAssets(rootDir, dir)
	if err != nil {
		return "", assetsConfig{}, fmt.Errorf("cloudflare: upload assets of worker %q: %w", script, err)
	}
	defer root.Close()
	assets, cfg, err := readAssets(root, dir)
	if err != nil {
		return "", cfg, fmt.Errorf("cloudflare: upload assets of worker %q: %w", script, err)
	}
	manifest := make(map[string]workers.ScriptAssetUploadNewParamsManifest, len(assets))
	byHash := make(map[string]asset, len(assets))
	for _, a := range assets {
		var m workers.ScriptAssetUploadNewParamsManifest
		set(&m.Hash, a.hash)
		set(&m.Size, a.size)
		manifest[a.path] = m
		byHash[a.hash] = a
	}
	var p workers.ScriptAssetUploadNewParams
	set(&p.AccountID, c.accountID)
	set(&p.Manifest, manifest)
	session, err := c.scripts.Assets.Upload.New(ctx, script, p)
	if err != nil {
		return "", cfg, c.wrap(err, "start assets upload session of worker", script)
	}
	// Without anything to upload, the session's token is the completion token.
	completion, uploaded := session.JWT, false
	for i, bucket := range session.Buckets {
		if len(bucket) == 0 {
			continue
		}
		if !uploaded {
			completion, uploaded = "", true
		}
		body, contentType, err := bucketBody(root, bucket, byHash)
		if err != nil {
			return "", cfg, fmt.Errorf("cloudflare: upload assets of worker %q: %w", script, err)
		}
		var up workers.AssetUploadNewParams
		set(&up.AccountID, c.accountID)
		set(&up.Base64, workers.AssetUploadNewParamsBase64True)
		// Buckets are authenticated with the session's token, not the API
		// token. The SDK would send each file as a plain form field, without
		// the Content-Type Cloudflare serves it with: the body is ours.
		res, err := c.assetUpload.New(ctx, up, option.WithAPIToken(session.JWT), option.WithRequestBody(contentType, body))
		if err != nil {
			return "", cfg, c.wrap(err, fmt.Sprintf("upload assets bucket %d/%d of worker", i+1, len(session.Buckets)), script, session.JWT)
		}
		// The answer to the last bucket carries the completion token.
		if res.JWT != "" {
			completion = res.JWT
		}
	}
	if completion == "" {
		return "", cfg, fmt.Errorf("cloudflare: upload assets of worker %q: no completion token in the API's answers", script)
	}
	return completion, cfg, nil
}

// bucketBody is one bucket of an assets upload as wrangler sends it: a
// multipart form with one file part per asset, named and filed under its
// hash, typed with the asset's Content-Type (which Cloudflare keeps and
// serves the file with), holding its content in base64.
func bucketBody(root *os.Root, bucket []string, byHash map[string]asset) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, h := range bucket {
		a, ok := byHash[h]
		if !ok {
			return nil, "", fmt.Errorf("API asked for unknown hash %s", h)
		}
		b, err := root.ReadFile(filepath.FromSlash(a.file))
		if err != nil {
			return nil, "", err
		}
		head := textproto.MIMEHeader{}
		head.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, h, h))
		head.Set("Content-Type", a.contentType)
		part, err := w.CreatePart(head)
		if err != nil {
			return nil, "", err
		}
		if _, err := io.WriteString(part, base64.StdEncoding.EncodeToString(b)); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}
