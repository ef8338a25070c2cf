package cloudflare

import (
	"path"
	"strings"
)

// noContentType is the part type that asks Cloudflare to serve an asset
// without a Content-Type header (developers.cloudflare.com/workers/
// static-assets/direct-upload/, cloudflare-docs PR #20263).
const noContentType = "application/null"

// assetTypes maps extensions to the types wrangler gives asset parts: the
// npm package mime (v4, its standard types) by file extension, as
// workers-shared's getContentType does. The table is our own rather than
// Go's mime.TypeByExtension, which reads the machine's /etc/mime.types:
// the same build would serve different types from different machines.
var assetTypes = map[string]string{
	"html":        "text/html",
	"htm":         "text/html",
	"shtml":       "text/html",
	"css":         "text/css",
	"js":          "text/javascript",
	"mjs":         "text/javascript",
	"cjs":         "application/node",
	"json":        "application/json",
	"map":         "application/json",
	"jsonld":      "application/ld+json",
	"webmanifest": "application/manifest+json",
	"txt":         "text/plain",
	"text":        "text/plain",
	"md":          "text/markdown",
	"markdown":    "text/markdown",
	"csv":         "text/csv",
	"xml":         "application/xml",
	"xhtml":       "application/xhtml+xml",
	"rss":         "application/rss+xml",
	"atom":        "application/atom+xml",
	"ics":         "text/calendar",
	"svg":         "image/svg+xml",
	"svgz":        "image/svg+xml",
	"png":         "image/png",
	"apng":        "image/apng",
	"jpg":         "image/jpeg",
	"jpeg":        "image/jpeg",
	"jpe":         "image/jpeg",
	"gif":         "image/gif",
	"webp":        "image/webp",
	"avif":        "image/avif",
	"ico":         "image/vnd.microsoft.icon",
	"bmp":         "image/bmp",
	"tif":         "image/tiff",
	"tiff":        "image/tiff",
	"woff":        "font/woff",
	"woff2":       "font/woff2",
	"ttf":         "font/ttf",
	"otf":         "font/otf",
	"eot":         "application/vnd.ms-fontobject",
	"wasm":        "application/wasm",
	"pdf":         "application/pdf",
	"zip":         "application/zip",
	"gz":          "application/gzip",
	"mp4":         "video/mp4",
	"webm":        "video/webm",
	"mp3":         "audio/mpeg",
	"ogg":         "audio/ogg",
	"oga":         "audio/ogg",
	"wav":         "audio/wav",
}

// assetContentType is the type an asset at name is uploaded with: by its
// extension (case-insensitive), text types in UTF-8 as wrangler sends them,
// and noContentType when the extension is unknown or missing.
func assetContentType(name string) string {
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(name), "."))
	t, ok := assetTypes[ext]
	if !ok {
		return noContentType
	}
	if strings.HasPrefix(t, "text/") {
		t += "; charset=utf-8"
	}
	return t
}
