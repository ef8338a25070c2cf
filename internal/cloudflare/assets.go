package cloudflare

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
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
	path string // manifest key: "/" + slash-separated path relative to the directory
	file string // on disk
	hash string
	size int64
}

// assetsConfig holds the special files wrangler lifts out of the directory
// into the upload's assets configuration.
type assetsConfig struct {
	headers, redirects string
}

// readAssets walks dir and hashes every file. The hash is only a content key
// for deduplication on Cloudflare's side: wrangler uses BLAKE3 over the
// base64 content plus the extension, truncated to 32 hex digits; SHA-256 over
// the same input keeps the shape without another dependency (the only cost is
// not sharing cache entries with wrangler uploads).
func readAssets(dir string) ([]asset, assetsConfig, error) {
	var out []asset
	var cfg assetsConfig
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch rel {
		case ".assetsignore":
			return nil
		case "_headers", "_redirects":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if rel == "_headers" {
				cfg.headers = string(b)
			} else {
				cfg.redirects = string(b)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if len(b) > maxAssetSize {
			return fmt.Errorf("asset %s is %d bytes, over the %d byte limit", rel, len(b), maxAssetSize)
		}
		sum := sha256.Sum256([]byte(base64.StdEncoding.EncodeToString(b) + strings.TrimPrefix(path.Ext(rel), ".")))
		out = append(out, asset{path: "/" + rel, file: p, hash: hex.EncodeToString(sum[:])[:32], size: int64(len(b))})
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

// uploadAssets runs an assets upload session for a Worker: register the
// manifest, upload the files the API does not have yet (in the buckets it
// asks for, authenticated with the session's token), and return the
// completion token to put in the upload metadata. Running it again after a
// failure uploads only what is still missing.
func (c *Client) uploadAssets(ctx context.Context, script, dir string) (string, assetsConfig, error) {
	assets, cfg, err := readAssets(dir)
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
		body := make(map[string]string, len(bucket))
		for _, h := range bucket {
			a, ok := byHash[h]
			if !ok {
				return "", cfg, fmt.Errorf("cloudflare: upload assets of worker %q: API asked for unknown hash %s", script, h)
			}
			b, err := os.ReadFile(a.file)
			if err != nil {
				return "", cfg, fmt.Errorf("cloudflare: upload assets of worker %q: %w", script, err)
			}
			body[h] = base64.StdEncoding.EncodeToString(b)
		}
		var up workers.AssetUploadNewParams
		set(&up.AccountID, c.accountID)
		set(&up.Base64, workers.AssetUploadNewParamsBase64True)
		up.Body = body
		// Buckets are authenticated with the session's token, not the API token.
		res, err := c.assetUpload.New(ctx, up, option.WithAPIToken(session.JWT))
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
