package repoconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// The JSON Schema of the pipeline file, doc/deploybot.schema.json, lets
// editors complete and check keys (yaml-language-server reads it). It is
// generated from the types above: every struct is an object refusing keys
// it does not have, as strictyaml does, and keyDocs says what each key is,
// its fixed values and whether it is required. A test regenerates it and
// fails when the committed file differs; rewrite it with
// `go generate ./internal/repoconfig`.

//go:generate go test -run TestJSONSchemaIsCurrent -update .

// SchemaID is where the published schema is served from.
const SchemaID = "https://raw.githubusercontent.com/revelations-studio/deploybot/main/doc/deploybot.schema.json"

// keyDoc describes one key of the file: "Type.key" in keyDocs.
type keyDoc struct {
	desc string
	// enum and pattern constrain the value, or a list's items.
	enum    []string
	pattern string
	// keys is the pattern of a mapping's keys (vars names).
	keys string
	// required: the key must be given; unlessKey: unless that key of the
	// same mapping is given (a wrangler file supplies it).
	required  bool
	unlessKey string
	duration  bool
	def       any // a default the validation fills in
	min, max  int
}

// Patterns the validation applies, as JSON Schema patterns.
var (
	durationPattern = `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$`
	placeholderHelp = " Placeholders: {pr}, {sha}, {sha7}, {branch}, {repo}."
)

// typeDocs describe the mappings of the file.
var typeDocs = map[string]string{
	"File":               "A repository's deploybot pipeline file, .github/deploybot.yml, read from the base branch.",
	"Database":           "The Neon side of previews and tests.",
	"Environments":       "What differs between the bot's three environments. Secret values are in the bot's config, per environment.",
	"Environment":        "What everything of one environment gets.",
	"Setup":              "A command run once per run, in the run's checkout, before the builds, the migration and the test stages.",
	"SetupCache":         "Folders of the checkout kept between runs whose key files are the same.",
	"Preview":            "When pull requests get previews.",
	"Worker":             "One Cloudflare Worker of the app.",
	"WorkerEnvironments": "What the Worker gets in addition in previews and in production.",
	"WorkerEnvironment":  "What the Worker gets in addition in one environment.",
	"Service":            "A service binding to another Worker of this file.",
	"Health":             "How a deployed Worker proves it works.",
	"Tests":              "The stages run on every push.",
	"Stage":              "One test command, a check run \"deploybot/test: <name>\".",
	"Production":         "How merges to the default branch deploy.",
	"Forks":              "What a maintainer-approved fork pull request gets.",
}

// keyDocs describe every key of every mapping of the file; the generator
// refuses a key without one.
var keyDocs = map[string]keyDoc{
	"File.version":      {desc: "The version of the file's format.", enum: []string{"1"}},
	"File.database":     {desc: "The Neon project and branches of previews and test runs."},
	"File.environments": {desc: "Vars of each environment (preview, test, production)."},
	"File.setup":        {desc: "A command run once per run before builds, migration and test stages."},
	"File.preview":      {desc: "When pull requests get previews."},
	"File.workers":      {desc: "The Cloudflare Workers of the app."},
	"File.tests":        {desc: "The test stages run on every push."},
	"File.production":   {desc: "How merges to the default branch deploy."},
	"File.forks":        {desc: "What a maintainer-approved fork pull request gets."},

	"Database.project":        {desc: "The Neon project id, e.g. proud-sun-123456. Required when the file has Workers or a stage with database: true."},
	"Database.parent":         {desc: "The branch previews and test branches start from."},
	"Database.preview_branch": {desc: "The name of a pull request's branch; must contain {pr}, {sha} or {sha7}." + placeholderHelp},
	"Database.test_branch":    {desc: "The name of a test run's ephemeral branch; must contain {pr}, {sha} or {sha7}." + placeholderHelp},
	"Database.init_source":    {desc: "What a preview branch starts with: the parent's data, or its schema only.", enum: initSources},
	"Database.migrate":        {desc: "The command applying migrations, run with DATABASE_URL set to the branch's direct connection URI. Empty: no migrations."},

	"Environments.preview":    {desc: "A pull request's preview."},
	"Environments.test":       {desc: "A push's test run."},
	"Environments.production": {desc: "Production."},
	"Environment.vars":        {desc: "Plain-text bindings of every Worker of the environment, and variables of its commands." + placeholderHelp + " ({pr} in previews only)", keys: bindingRE.String()},

	"Setup.run":     {desc: "The command (sh -c) run in the checkout."},
	"Setup.timeout": {desc: "How long it may run.", duration: true, def: "15m"},
	"Setup.cache":   {desc: "Folders of the checkout kept between runs (e.g. node_modules), keyed by files (e.g. pnpm-lock.yaml)."},

	"SetupCache.key":   {desc: "Files of the checkout whose contents key the cache."},
	"SetupCache.paths": {desc: "Folders of the checkout kept between runs."},

	"Preview.drafts":      {desc: "Deploy draft pull requests too."},
	"Preview.on":          {desc: "The pull_request actions that deploy.", enum: prActions},
	"Preview.ttl":         {desc: "Delete a preview not deployed for this long, e.g. 168h (none: never).", duration: true},
	"Preview.needs_tests": {desc: "Test stages that must pass on the pull request's head before its preview deploys: stage names, or all."},

	"Worker.name":                {desc: "The Worker's name in this file.", required: true, pattern: nameRE.String()},
	"Worker.wrangler":            {desc: "The Worker's wrangler file (wrangler.toml, .json or .jsonc), which fills in what this file leaves unsaid."},
	"Worker.script":              {desc: "The production script name (from the wrangler file's name when not given).", unlessKey: "wrangler"},
	"Worker.preview_script":      {desc: "The name of a pull request's script (default <script>-preview-{pr})." + placeholderHelp},
	"Worker.hostname":            {desc: "The production hostname."},
	"Worker.preview_hostname":    {desc: "The hostname of a pull request's preview, e.g. codex-preview-{pr}.example.com." + placeholderHelp},
	"Worker.build":               {desc: "The command producing the Worker's files, run in dir."},
	"Worker.dir":                 {desc: "The Worker's folder in the repository (default: the root, or the wrangler file's folder)."},
	"Worker.main":                {desc: "The ES module entry, relative to dir, e.g. dist/index.js.", unlessKey: "wrangler"},
	"Worker.modules":             {desc: "More module files, relative to dir; globs allowed (dist/chunks/*.js)."},
	"Worker.assets":              {desc: "A folder of static assets the build writes, relative to dir."},
	"Worker.assets_binding":      {desc: "Exposes the assets to the Worker as env.<binding>.", pattern: bindingRE.String()},
	"Worker.compatibility_date":  {desc: "The Workers runtime's compatibility date, e.g. 2025-01-01.", pattern: dateRE.String(), unlessKey: "wrangler"},
	"Worker.compatibility_flags": {desc: "Workers runtime compatibility flags, e.g. nodejs_compat."},
	"Worker.vars":                {desc: "Plain-text bindings of the Worker in every environment." + placeholderHelp, keys: bindingRE.String()},
	"Worker.secrets":             {desc: "Secret bindings whose values the bot's config holds for this repository.", pattern: bindingRE.String()},
	"Worker.generated_secrets":   {desc: "Secret bindings whose values the bot derives per pull request from its master key (previews only; see environments.production.generated_secrets).", pattern: bindingRE.String()},
	"Worker.database_url":        {desc: "The secret binding that receives the database branch's pooled connection URI.", pattern: bindingRE.String()},
	"Worker.services":            {desc: "Service bindings to other Workers of this file."},
	"Worker.health":              {desc: "The health check of a deployed Worker."},
	"Worker.environments":        {desc: "Vars, secrets and generated secrets of the Worker in previews and in production."},
	"Worker.paths":               {desc: "A preview redeploys the Worker only after a change of these files (GitHub Actions globs)."},
	"Worker.paths_ignore":        {desc: "Changes of these files do not redeploy the Worker in a preview."},

	"WorkerEnvironments.preview":          {desc: "In previews."},
	"WorkerEnvironments.production":       {desc: "In production."},
	"WorkerEnvironment.vars":              {desc: "Plain-text bindings; they win over the Worker's and the environment's.", keys: bindingRE.String()},
	"WorkerEnvironment.secrets":           {desc: "Secret bindings whose values the bot's config holds for this environment.", pattern: bindingRE.String()},
	"WorkerEnvironment.generated_secrets": {desc: "Generated secret bindings; in production only these are generated.", pattern: bindingRE.String()},

	"Service.binding": {desc: "The binding's name in the Worker's env.", required: true, pattern: bindingRE.String()},
	"Service.worker":  {desc: "The name of the bound Worker of this file.", required: true},

	"Health.path":    {desc: "The path requested; must start with /.", pattern: "^/", def: "/"},
	"Health.status":  {desc: "The HTTP status it must answer.", min: 100, max: 599, def: 200},
	"Health.timeout": {desc: "How long the Worker has to become healthy, e.g. 5m.", duration: true},

	"Tests.stages":  {desc: "The test stages, each its own check run; they run in parallel where needs allows."},
	"Tests.secrets": {desc: "Secrets of the test environment (values in the bot's config) given to every stage as environment variables.", pattern: bindingRE.String()},

	"Stage.name":         {desc: "The stage's name, in its check run \"deploybot/test: <name>\".", required: true, pattern: nameRE.String()},
	"Stage.run":          {desc: "The command (sh -c).", required: true},
	"Stage.needs":        {desc: "Stages that must pass before this one starts."},
	"Stage.database":     {desc: "Runs on the run's ephemeral database branch (DATABASE_URL), migrated first."},
	"Stage.timeout":      {desc: "How long the stage may run.", duration: true},
	"Stage.paths":        {desc: "The stage runs only when a push changed one of these files (GitHub Actions globs)."},
	"Stage.paths_ignore": {desc: "Changes of these files do not run the stage."},

	"Production.enabled":     {desc: "Deploy the default branch on every push (a merge)."},
	"Production.branch":      {desc: "The Neon branch migrated on deploy (default: database.parent)."},
	"Production.needs_tests": {desc: "Test stages that must pass on the merged commit before production deploys: stage names, or all."},

	"Forks.secrets":     {desc: "Give approved fork runs the configured secrets."},
	"Forks.init_source": {desc: "What a fork's preview branch starts with.", enum: initSources},
}

// typeExtras are constraints across the keys of one mapping.
var typeExtras = map[string]map[string]any{
	"File": {
		"if":   map[string]any{"required": []string{"workers"}, "properties": map[string]any{"workers": map[string]any{"minItems": 1}}},
		"then": map[string]any{"required": []string{"database"}, "properties": map[string]any{"database": map[string]any{"required": []string{"project"}}}},
	},
	"Setup":      {"dependentRequired": map[string][]string{"timeout": {"run"}, "cache": {"run"}}},
	"SetupCache": {"dependentRequired": map[string][]string{"key": {"paths"}, "paths": {"key"}}},
}

// JSONSchema is the JSON Schema (draft 2020-12) of the pipeline file,
// indented, as committed in doc/deploybot.schema.json.
func JSONSchema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root, err := g.object(reflect.TypeFor[File](), reflect.ValueOf(*defaults()))
	if err != nil {
		return nil, err
	}
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "deploybot pipeline file (.github/deploybot.yml)"
	root["$defs"] = g.defs
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type schemaGen struct {
	defs map[string]any
}

// object is the schema of struct type t; def holds its defaults.
func (g *schemaGen) object(t reflect.Type, def reflect.Value) (map[string]any, error) {
	props := map[string]any{}
	var required []string
	unless := map[string][]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		doc, ok := keyDocs[t.Name()+"."+key]
		if !ok {
			return nil, fmt.Errorf("repoconfig: %s.%s has no entry in keyDocs", t.Name(), key)
		}
		s, err := g.value(f.Type, doc)
		if err != nil {
			return nil, err
		}
		s["description"] = doc.desc
		if doc.def != nil {
			s["default"] = doc.def
		} else if def.IsValid() && !def.Field(i).IsZero() && f.Type.Kind() != reflect.Struct {
			s["default"] = def.Field(i).Interface()
		}
		props[key] = s
		switch {
		case doc.required:
			required = append(required, key)
		case doc.unlessKey != "":
			unless[doc.unlessKey] = append(unless[doc.unlessKey], key)
		}
	}
	for k := range keyDocs {
		if typ, key, _ := strings.Cut(k, "."); typ == t.Name() {
			if _, ok := props[key]; !ok {
				return nil, fmt.Errorf("repoconfig: keyDocs has %s, which %s does not", k, typ)
			}
		}
	}
	desc, ok := typeDocs[t.Name()]
	if !ok {
		return nil, fmt.Errorf("repoconfig: %s has no entry in typeDocs", t.Name())
	}
	s := map[string]any{"type": "object", "description": desc, "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	for other, keys := range unless {
		s["if"] = map[string]any{"not": map[string]any{"required": []string{other}}}
		s["then"] = map[string]any{"required": keys}
	}
	for k, v := range typeExtras[t.Name()] {
		if _, taken := s[k]; taken {
			return nil, fmt.Errorf("repoconfig: typeExtras of %s sets %s twice", t.Name(), k)
		}
		s[k] = v
	}
	return s, nil
}

// value is the schema of a key of type t.
func (g *schemaGen) value(t reflect.Type, doc keyDoc) (map[string]any, error) {
	if t == reflect.TypeFor[Gate]() {
		return map[string]any{"anyOf": []any{
			map[string]any{"const": "all"},
			map[string]any{"type": "array", "items": map[string]any{"type": "string", "pattern": nameRE.String()}},
		}}, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if _, done := g.defs[t.Name()]; !done {
			g.defs[t.Name()] = nil // a type refers to itself at most through a $ref
			var def reflect.Value
			if d, ok := defaultOf(t); ok {
				def = d
			}
			s, err := g.object(t, def)
			if err != nil {
				return nil, err
			}
			g.defs[t.Name()] = s
		}
		return map[string]any{"$ref": "#/$defs/" + t.Name()}, nil
	case reflect.Slice:
		items, err := g.value(t.Elem(), keyDoc{enum: doc.enum, pattern: doc.pattern, duration: doc.duration})
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		// The bot reads a var's value as text: numbers and booleans too.
		s := map[string]any{"type": "object", "additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}}}
		if doc.keys != "" {
			s["propertyNames"] = map[string]any{"pattern": doc.keys}
		}
		return s, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int:
		s := map[string]any{"type": "integer"}
		if len(doc.enum) > 0 {
			var vals []int
			for _, e := range doc.enum {
				var n int
				if _, err := fmt.Sscan(e, &n); err != nil {
					return nil, err
				}
				vals = append(vals, n)
			}
			s["enum"] = vals
		}
		if doc.min != 0 || doc.max != 0 {
			s["minimum"], s["maximum"] = doc.min, doc.max
		}
		return s, nil
	case reflect.String:
		s := map[string]any{"type": "string"}
		switch {
		case len(doc.enum) > 0:
			s["enum"] = doc.enum
		case doc.duration:
			s["pattern"] = durationPattern
		case doc.pattern != "":
			s["pattern"] = doc.pattern
		}
		return s, nil
	}
	return nil, fmt.Errorf("repoconfig: no JSON Schema for %s", t)
}

// defaultOf finds the defaults of a struct type among the fields of the
// file's defaults (the mappings with defaults are the file's own keys).
func defaultOf(t reflect.Type) (reflect.Value, bool) {
	d := reflect.ValueOf(*defaults())
	for i := range d.NumField() {
		if d.Field(i).Type() == t {
			return d.Field(i), true
		}
	}
	return reflect.Value{}, false
}
