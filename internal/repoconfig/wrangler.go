package repoconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/revelations-studio/deploybot/internal/strictyaml"
)

// A Worker may take its settings from the wrangler file the team already
// has (workers[].wrangler: apps/web/wrangler.toml, or .json/.jsonc): main,
// compatibility date and flags, vars, service bindings and assets. What
// the pipeline file says of the Worker wins over it. Paths in a wrangler
// file are relative to its folder, as wrangler reads them.
//
// Everything else a wrangler file can hold either does not matter to a
// deploy by the bot (routes, dev settings, other environments: ignored) or
// is a binding or setting the bot cannot create yet (KV, D1, queues, cron
// triggers, …): the file is refused with that key, rather than the Worker
// deployed without it.

// Reader reads a file of the repository at the commit the pipeline file
// was read from.
type Reader func(path string) ([]byte, error)

// wranglerFile is what the bot reads of a wrangler file.
type wranglerFile struct {
	Name               string            `toml:"name" json:"name"`
	Main               string            `toml:"main" json:"main"`
	CompatibilityDate  string            `toml:"compatibility_date" json:"compatibility_date"`
	CompatibilityFlags []string          `toml:"compatibility_flags" json:"compatibility_flags"`
	Vars               map[string]any    `toml:"vars" json:"vars"`
	Services           []wranglerService `toml:"services" json:"services"`
	Assets             *wranglerAssets   `toml:"assets" json:"assets"`

	// How wrangler itself deploys or serves locally: nothing to do with a
	// deploy by the bot.
	Schema                any `toml:"$schema" json:"$schema"`
	AccountID             any `toml:"account_id" json:"account_id"`
	WorkersDev            any `toml:"workers_dev" json:"workers_dev"`
	PreviewURLs           any `toml:"preview_urls" json:"preview_urls"`
	Route                 any `toml:"route" json:"route"`
	Routes                any `toml:"routes" json:"routes"`
	Env                   any `toml:"env" json:"env"`
	Dev                   any `toml:"dev" json:"dev"`
	Build                 any `toml:"build" json:"build"`
	Rules                 any `toml:"rules" json:"rules"`
	NoBundle              any `toml:"no_bundle" json:"no_bundle"`
	FindAdditionalModules any `toml:"find_additional_modules" json:"find_additional_modules"`
	BaseDir               any `toml:"base_dir" json:"base_dir"`
	Minify                any `toml:"minify" json:"minify"`
	Tsconfig              any `toml:"tsconfig" json:"tsconfig"`
	UploadSourceMaps      any `toml:"upload_source_maps" json:"upload_source_maps"`
	SendMetrics           any `toml:"send_metrics" json:"send_metrics"`
	Observability         any `toml:"observability" json:"observability"`
	KeepVars              any `toml:"keep_vars" json:"keep_vars"`
}

type wranglerService struct {
	Binding string `toml:"binding" json:"binding"`
	Service string `toml:"service" json:"service"`
}

type wranglerAssets struct {
	Directory string `toml:"directory" json:"directory"`
	Binding   string `toml:"binding" json:"binding"`
}

// unsupportedHint ends the error for a key the bot cannot honour.
const unsupportedHint = "the bot cannot deploy this yet: remove it from the file, or deploy this Worker with wrangler"

// readWrangler reads and decodes the wrangler file at file (a path in the
// repository).
func readWrangler(file string, read Reader) (*wranglerFile, []byte, error) {
	data, err := read(file)
	if err != nil {
		return nil, nil, &strictyaml.Error{File: file, Msg: fmt.Sprintf("cannot be read: %v", err)}
	}
	var w wranglerFile
	switch ext := path.Ext(file); ext {
	case ".toml":
		dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return nil, nil, tomlError(file, err)
		}
	case ".json", ".jsonc":
		plain := stripJSONC(data)
		dec := json.NewDecoder(bytes.NewReader(plain))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return nil, nil, jsonError(file, data, plain, err)
		}
	default:
		return nil, nil, &strictyaml.Error{File: file, Msg: fmt.Sprintf("%q is not a wrangler file (wrangler.toml, wrangler.json or wrangler.jsonc)", ext)}
	}
	return &w, data, nil
}

func tomlError(file string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var errs []error
		for _, e := range strict.Errors {
			line, _ := e.Position()
			errs = append(errs, &strictyaml.Error{File: file, Line: line, Key: strings.Join(e.Key(), "."), Msg: unsupportedHint})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		return &strictyaml.Error{File: file, Line: line, Key: strings.Join(de.Key(), "."), Msg: strings.TrimPrefix(de.Error(), "toml: ")}
	}
	return &strictyaml.Error{File: file, Msg: err.Error()}
}

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]+)"`)

func jsonError(file string, data, plain []byte, err error) error {
	if m := unknownFieldRE.FindStringSubmatch(err.Error()); m != nil {
		return &strictyaml.Error{File: file, Line: lineOf(data, `"`+m[1]+`"`), Key: m[1], Msg: unsupportedHint}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &strictyaml.Error{File: file, Line: bytes.Count(plain[:min(int(se.Offset), len(plain))], []byte("\n")) + 1, Msg: se.Error()}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &strictyaml.Error{File: file, Line: bytes.Count(plain[:min(int(te.Offset), len(plain))], []byte("\n")) + 1, Key: te.Field, Msg: fmt.Sprintf("expected %s, found %s", te.Type, te.Value)}
	}
	return &strictyaml.Error{File: file, Msg: err.Error()}
}

// stripJSONC turns JSON with comments and trailing commas (wrangler's
// JSONC) into JSON, keeping every newline so that offsets keep their line.
func stripJSONC(data []byte) []byte {
	return dropTrailingCommas(dropComments(data))
}

// scanJSON copies data's strings as they are and hands every other byte to
// outside, which says how many bytes it consumed and what to write
// instead.
func scanJSON(data []byte, outside func(i int) (skip int, write []byte)) []byte {
	out := make([]byte, 0, len(data))
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		skip, write := outside(i)
		out = append(out, write...)
		i += skip - 1
	}
	return out
}

func dropComments(data []byte) []byte {
	return scanJSON(data, func(i int) (int, []byte) {
		rest := data[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("//")):
			end := bytes.IndexByte(rest, '\n')
			if end < 0 {
				return len(rest), nil
			}
			return end, nil // the newline stays
		case bytes.HasPrefix(rest, []byte("/*")):
			n := len(rest) // an unclosed comment runs to the end
			if end := bytes.Index(rest[2:], []byte("*/")); end >= 0 {
				n = end + 4
			}
			return n, bytes.Repeat([]byte("\n"), bytes.Count(rest[:n], []byte("\n")))
		}
		return 1, rest[:1]
	})
}

func dropTrailingCommas(data []byte) []byte {
	return scanJSON(data, func(i int) (int, []byte) {
		if data[i] == ',' {
			rest := bytes.TrimLeft(data[i+1:], " \t\r\n")
			if len(rest) > 0 && (rest[0] == '}' || rest[0] == ']') {
				return 1, nil
			}
		}
		return 1, data[i : i+1]
	})
}

// lineOf is the line of needle's first occurrence in data (0 if none).
func lineOf(data []byte, needle string) int {
	i := bytes.Index(data, []byte(needle))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// applyWrangler fills what w leaves unsaid from its wrangler file. scripts
// maps the file's production script names to their worker names, for
// service bindings; a binding to another script is refused.
func applyWrangler(w *Worker, wf *wranglerFile, data []byte, file string, scripts map[string]string) []error {
	var errs []error
	fail := func(needle, key, format string, args ...any) {
		errs = append(errs, &strictyaml.Error{File: file, Line: lineOf(data, needle), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	dir := path.Dir(file)
	if w.Dir == "" {
		w.Dir = dir
		if dir == "." {
			w.Dir = ""
		}
	}
	// fromDir is p (relative to the wrangler file) relative to the Worker's
	// folder.
	fromDir := func(p, key string) string {
		full := path.Clean(path.Join(dir, p))
		base := path.Clean(w.Dir)
		if base == "." || base == "" {
			return full
		}
		rel, ok := strings.CutPrefix(full, base+"/")
		if !ok {
			fail(p, key, "%q is outside the Worker's dir %q", p, w.Dir)
		}
		return rel
	}
	if w.Script == "" {
		w.Script = wf.Name
	}
	if w.Main == "" && wf.Main != "" {
		w.Main = fromDir(wf.Main, "main")
	}
	if w.CompatibilityDate == "" {
		w.CompatibilityDate = wf.CompatibilityDate
	}
	if w.CompatibilityFlags == nil {
		w.CompatibilityFlags = wf.CompatibilityFlags
	}
	if len(wf.Vars) > 0 {
		vars := map[string]string{}
		for name, v := range wf.Vars {
			s, ok := v.(string)
			if !ok {
				fail(name, "vars."+name, "only text vars are supported (this one is a %T): make it a string", v)
				continue
			}
			vars[name] = s
		}
		for name, v := range w.Vars {
			vars[name] = v
		}
		w.Vars = vars
	}
	if w.Services == nil {
		for i, s := range wf.Services {
			worker, ok := scripts[s.Service]
			if !ok {
				fail(s.Service, fmt.Sprintf("services[%d].service", i), "%q is not the script of a worker of %s: the bot binds only the Workers it deploys", s.Service, Path)
				continue
			}
			w.Services = append(w.Services, Service{Binding: s.Binding, Worker: worker})
		}
	}
	if a := wf.Assets; a != nil && w.Assets == "" && a.Directory != "" {
		w.Assets = fromDir(a.Directory, "assets.directory")
		if w.AssetsBinding == "" {
			w.AssetsBinding = a.Binding
		}
	}
	return errs
}

// resolveWrangler reads the wrangler files the Workers of f name and
// fills them in. keys are the Workers' keys, for errors of the pipeline
// file itself.
func resolveWrangler(name string, f *File, lines strictyaml.Lines, read Reader) []error {
	var errs []error
	files := make([]*wranglerFile, len(f.Workers))
	datas := make([][]byte, len(f.Workers))
	for i, w := range f.Workers {
		if w.Wrangler == "" {
			continue
		}
		key := fmt.Sprintf("workers[%d].wrangler", i)
		clean := path.Clean(w.Wrangler)
		switch {
		case read == nil:
			errs = append(errs, lines.Errorf(name, key, "wrangler files cannot be read here"))
			continue
		case path.IsAbs(w.Wrangler) || clean == ".." || strings.HasPrefix(clean, "../"):
			errs = append(errs, lines.Errorf(name, key, "%q must be a path inside the repository", w.Wrangler))
			continue
		}
		wf, data, err := readWrangler(clean, read)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files[i], datas[i] = wf, data
		if f.Workers[i].Script == "" {
			f.Workers[i].Script = wf.Name
		}
	}
	scripts := map[string]string{}
	for _, w := range f.Workers {
		if w.Script != "" {
			scripts[w.Script] = w.Name
		}
	}
	for i := range f.Workers {
		if files[i] != nil {
			errs = append(errs, applyWrangler(&f.Workers[i], files[i], datas[i], path.Clean(f.Workers[i].Wrangler), scripts)...)
		}
	}
	return errs
}
