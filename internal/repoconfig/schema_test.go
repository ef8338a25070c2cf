package repoconfig

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite doc/deploybot.schema.json from the types")

const schemaFile = "../../doc/deploybot.schema.json"

// TestJSONSchemaIsCurrent: the published schema is the one the types
// generate. After changing the file's types or keyDocs, run
//
//	go test ./internal/repoconfig -run TestJSONSchema -update
func TestJSONSchemaIsCurrent(t *testing.T) {
	got, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the types generate: run go test ./internal/repoconfig -run TestJSONSchema -update", schemaFile)
	}
}

// compiledSchema compiles the committed schema with a draft 2020-12
// validator.
func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// instance is a YAML file as the JSON value a validator checks.
func instance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestJSONSchemaAcceptsValidFiles: every file the bot accepts here, the
// sample app's and the fixtures, passes the schema.
func TestJSONSchemaAcceptsValidFiles(t *testing.T) {
	s := compiledSchema(t)
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../demo/samplerepo/.github/deploybot.yml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(name, data); err != nil {
			t.Fatalf("the bot refuses %s: %v", name, err)
		}
		if err := s.Validate(instance(t, data)); err != nil {
			t.Errorf("the schema refuses %s: %v", name, err)
		}
	}
}

// TestJSONSchemaRefusesWhatTheBotRefuses: mistakes the parser reports are
// flagged by an editor too.
func TestJSONSchemaRefusesWhatTheBotRefuses(t *testing.T) {
	s := compiledSchema(t)
	const worker = "version: 1\ndatabase: {project: p}\nworkers:\n  - name: web\n    script: web\n    main: index.js\n    compatibility_date: \"2025-01-01\"\n"
	if err := s.Validate(instance(t, []byte(worker))); err != nil {
		t.Fatalf("a valid file is refused: %v", err)
	}
	for name, file := range map[string]string{
		"unknown top-level key":   worker + "previews: {}\n",
		"unknown worker key":      strings.Replace(worker, "script:", "scritp:", 1),
		"bad type":                worker + "    health: {status: ok}\n",
		"status out of range":     worker + "    health: {status: 42}\n",
		"unknown init_source":     worker + "forks: {init_source: copy}\n",
		"unknown preview action":  worker + "preview: {on: [closed]}\n",
		"bad gate":                worker + "production: {needs_tests: some}\n",
		"worker without main":     strings.Replace(worker, "    main: index.js\n", "", 1),
		"stage without run":       worker + "tests: {stages: [{name: unit}]}\n",
		"bad duration":            worker + "preview: {ttl: 1week}\n",
		"bad binding name":        worker + "    secrets: [stripe-key]\n",
		"workers without project": "version: 1\nworkers:\n  - name: web\n    script: web\n    main: index.js\n    compatibility_date: \"2025-01-01\"\n",
		"version 2":               strings.Replace(worker, "version: 1", "version: 2", 1),
		"cache without paths":     worker + "setup: {run: make, cache: {key: [go.sum]}}\n",
	} {
		if _, err := Parse("f.yml", []byte(file)); err == nil {
			t.Errorf("%s: the bot accepts it, the test is wrong", name)
		}
		if err := s.Validate(instance(t, []byte(file))); err == nil {
			t.Errorf("%s: the schema accepts it", name)
		}
	}
	// A Worker taking its settings from a wrangler file needs no script,
	// main or date of its own.
	wrangler := "version: 1\ndatabase: {project: p}\nworkers:\n  - name: web\n    wrangler: apps/web/wrangler.toml\n"
	if err := s.Validate(instance(t, []byte(wrangler))); err != nil {
		t.Errorf("a Worker with a wrangler file is refused: %v", err)
	}
}
