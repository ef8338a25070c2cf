package cloudflare

import (
	"path"
	"strings"
)

// noContentType is the part type that asks Cloudflare to serve a file
// without a Content-Type header (developers.cloudflare.com/workers/
// static-assets/direct-upload/; wrangler sends it for files mime does not
// know).
const noContentType = "application/null"

// assetContentType is the Content-Type Cloudflare will serve an asset with,
// chosen as wrangler's getContentType does (workers-shared/utils/helpers.ts):
// the npm mime v4 type of the file's extension, "; charset=utf-8" added to
// text/* types, and noContentType for an extension it does not know or a
// name without one (a dotfile such as ".htaccess" has none).
//
// The table is ours rather than Go's mime.TypeByExtension, which reads the
// machine's /etc/mime.types: the same build would publish a file with
// different types depending on the host it ran on.
func assetContentType(name string) string {
	base := path.Base(name)
	i := strings.LastIndexByte(base, '.')
	if i <= 0 {
		return noContentType
	}
	t, ok := mimeTypes[strings.ToLower(base[i+1:])]
	if !ok {
		return noContentType
	}
	if strings.HasPrefix(t, "text/") {
		t += "; charset=utf-8"
	}
	return t
}

// mimeTypes are the web-relevant entries of npm mime v4.1.0's database
// (types/standard.ts, then types/other.ts; starred extensions excluded, as
// mime's getType excludes them), copied value for value. Extensions missing
// here get no Content-Type, as they would with wrangler for types mime does
// not know; adding one means copying mime's value, not guessing.
var mimeTypes = map[string]string{
	// documents and text
	"html":        "text/html",
	"htm":         "text/html",
	"shtml":       "text/html",
	"xhtml":       "application/xhtml+xml",
	"xht":         "application/xhtml+xml",
	"css":         "text/css",
	"js":          "text/javascript",
	"mjs":         "text/javascript",
	"cjs":         "application/node",
	"jsx":         "text/jsx",
	"json":        "application/json",
	"jsonld":      "application/ld+json",
	"map":         "application/json",
	"webmanifest": "application/manifest+json",
	"geojson":     "application/geo+json",
	"txt":         "text/plain",
	"text":        "text/plain",
	"md":          "text/markdown",
	"markdown":    "text/markdown",
	"xml":         "application/xml",
	"xsl":         "application/xml",
	"xslt":        "application/xslt+xml",
	"rss":         "application/rss+xml",
	"atom":        "application/atom+xml",
	"csv":         "text/csv",
	"tsv":         "text/tab-separated-values",
	"ics":         "text/calendar",
	"vcf":         "text/x-vcard",
	"yaml":        "text/yaml",
	"yml":         "text/yaml",
	"toml":        "application/toml",
	"vtt":         "text/vtt",
	"srt":         "application/x-subrip",
	"appcache":    "text/cache-manifest",
	"wgsl":        "text/wgsl",
	"pdf":         "application/pdf",
	"rtf":         "application/rtf",
	"epub":        "application/epub+zip",
	"doc":         "application/msword",
	"docx":        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"xls":         "application/vnd.ms-excel",
	"xlsx":        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"ppt":         "application/vnd.ms-powerpoint",
	"pptx":        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	"odt":         "application/vnd.oasis.opendocument.text",
	"ods":         "application/vnd.oasis.opendocument.spreadsheet",
	"odp":         "application/vnd.oasis.opendocument.presentation",

	// images
	"svg":  "image/svg+xml",
	"svgz": "image/svg+xml",
	"png":  "image/png",
	"apng": "image/apng",
	"jpg":  "image/jpeg",
	"jpeg": "image/jpeg",
	"jpe":  "image/jpeg",
	"jfif": "image/pjpeg",
	"gif":  "image/gif",
	"webp": "image/webp",
	"avif": "image/avif",
	"heic": "image/heic",
	"heif": "image/heif",
	"jxl":  "image/jxl",
	"ico":  "image/vnd.microsoft.icon",
	"bmp":  "image/bmp",
	"tif":  "image/tiff",
	"tiff": "image/tiff",

	// fonts
	"woff":  "font/woff",
	"woff2": "font/woff2",
	"ttf":   "font/ttf",
	"otf":   "font/otf",
	"eot":   "application/vnd.ms-fontobject",

	// audio and video
	"mp4":  "video/mp4",
	"m4v":  "video/x-m4v",
	"mov":  "video/quicktime",
	"webm": "video/webm",
	"ogv":  "video/ogg",
	"mpeg": "video/mpeg",
	"mpg":  "video/mpeg",
	"m3u8": "application/vnd.apple.mpegurl",
	"ts":   "video/mp2t",
	"mp3":  "audio/mpeg",
	"m4a":  "audio/mp4",
	"aac":  "audio/aac",
	"oga":  "audio/ogg",
	"ogg":  "audio/ogg",
	"opus": "audio/ogg",
	"wav":  "audio/wav",
	"weba": "audio/webm",
	"flac": "audio/x-flac",
	"mid":  "audio/midi",
	"midi": "audio/midi",

	// 3D models
	"glb":  "model/gltf-binary",
	"gltf": "model/gltf+json",
	"usdz": "model/vnd.usdz+zip",

	// code, archives, binaries
	"wasm": "application/wasm",
	"zip":  "application/zip",
	"gz":   "application/gzip",
	"tar":  "application/x-tar",
	"bz2":  "application/x-bzip2",
	"7z":   "application/x-7z-compressed",
	"rar":  "application/vnd.rar",
	"xz":   "application/x-xz",
	"jar":  "application/java-archive",
	"apk":  "application/vnd.android.package-archive",
	"bin":  "application/octet-stream",
	"exe":  "application/octet-stream",
	"dmg":  "application/octet-stream",
	"iso":  "application/octet-stream",
	"sh":   "application/x-sh",
	"swf":  "application/x-shockwave-flash",
	"pem":  "application/x-x509-ca-cert",
	"crt":  "application/x-x509-ca-cert",
	"der":  "application/x-x509-ca-cert",
	"p12":  "application/x-pkcs12",
}
