package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/config"
)

// TestStartupChecks: what `bot serve` refuses to start with, and what it
// only warns about, each as the one line an operator reads. The configs are
// files, loaded as the bot loads them; {cfg} is the config's path and {dir}
// the folder of the key files.
func TestStartupChecks(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	pkcs8Bytes, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pkcs8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8Bytes})
	pubBytes, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	public := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubBytes})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecBytes, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ec := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecBytes})
	truncated := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)[:200]})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00000000000000000000000000000000"}, Bytes: []byte("ciphertext")})
	files := map[string][]byte{"app.pem": pkcs1, "pkcs8.pem": pkcs8, "public.pem": public, "ec.pem": ec, "truncated.pem": truncated, "encrypted.pem": encrypted, "empty.pem": []byte("\n")}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "a-folder.pem"), 0o700); err != nil {
		t.Fatal(err)
	}

	const app = "github:\n  app:\n    integration_id: 7\n    webhook_secret: s\n    private_key: {file: {dir}/app.pem}\n"
	const repo = "repositories:\n  acme/app:\n    cloudflare: {account_id: acc, zone_id: zone}\n"
	const creds = "neon: {api_key: n}\ncloudflare: {api_token: c}\n"
	const goodMaster = "master_key: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
	for _, c := range []struct {
		name     string
		yaml     string
		env      map[string]string
		refused  []string
		warnings []string
	}{
		{name: "everything a repository needs", yaml: app + creds + goodMaster + repo},
		{name: "a PKCS#8 RSA key", yaml: strings.Replace(app, "app.pem", "pkcs8.pem", 1) + creds + goodMaster + repo},
		{name: "a base64 master key", yaml: app + creds + "master_key: n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=\n" + repo},
		{name: "a long passphrase", yaml: app + creds + "master_key: \"correct horse battery staple, then 12 more\"\n" + repo},
		{name: "the App's id and key missing", yaml: "github:\n  app:\n    webhook_secret: s\n",
			refused: []string{
				`{cfg}: github.app.integration_id: is not set: the GitHub App's numeric id (its settings page, "App ID") is needed to act on deliveries`,
				`{cfg}: github.app.private_key: is not set: the App's private key (PEM) is needed to act on deliveries (set it, or DEPLOYBOT_GITHUB_PRIVATE_KEY)`,
			},
			warnings: []string{noRepositories}},
		{name: "a key that is no PEM", yaml: "github:\n  app:\n    integration_id: 7\n    webhook_secret: s\n    private_key: \"-----BEGIN RSA PRIVATE KEY----- abc\"\n",
			refused:  []string{`{cfg}:5: github.app.private_key: the key from the config file is not a PEM-encoded RSA private key (the file GitHub gives begins with -----BEGIN RSA PRIVATE KEY-----)`},
			warnings: []string{noRepositories}},
		{name: "a public key", yaml: strings.Replace(app, "app.pem", "public.pem", 1),
			refused:  []string{`{cfg}:5: github.app.private_key: the key from file {dir}/public.pem is a PEM block "PUBLIC KEY", not an RSA private key (the file GitHub gives begins with -----BEGIN RSA PRIVATE KEY-----)`},
			warnings: []string{noRepositories}},
		{name: "an ECDSA key from the default _FILE variable", yaml: "github:\n  app:\n    integration_id: 7\n    webhook_secret: s\n",
			env:      map[string]string{config.EnvPrivateKey + "_FILE": "{dir}/ec.pem"},
			refused:  []string{`{cfg}: github.app.private_key: the key from file {dir}/ec.pem (DEPLOYBOT_GITHUB_PRIVATE_KEY_FILE) is an ECDSA key, not an RSA key: GitHub Apps sign with RSA`},
			warnings: []string{noRepositories}},
		{name: "a truncated key from the default variable", yaml: "github:\n  app:\n    integration_id: 7\n    webhook_secret: s\n",
			env:      map[string]string{config.EnvPrivateKey: string(truncated)},
			refused:  []string{`{cfg}: github.app.private_key: the key from variable DEPLOYBOT_GITHUB_PRIVATE_KEY is a PEM block "RSA PRIVATE KEY" whose content is not a valid RSA key (a truncated or edited file?)`},
			warnings: []string{noRepositories}},
		{name: "an encrypted key", yaml: strings.Replace(app, "app.pem", "encrypted.pem", 1),
			refused:  []string{`{cfg}:5: github.app.private_key: the key from file {dir}/encrypted.pem is an encrypted PEM key: give the key as GitHub gave it, unencrypted`},
			warnings: []string{noRepositories}},
		{name: "an unreadable key file", yaml: strings.Replace(app, "app.pem", "a-folder.pem", 1),
			refused: []string{`{cfg}:5: github.app.private_key: read secret file: read {dir}/a-folder.pem: is a directory`}},
		{name: "a missing key file named by the _FILE variable", yaml: "github:\n  app:\n    integration_id: 7\n    webhook_secret: s\n",
			env:     map[string]string{config.EnvPrivateKey + "_FILE": "{dir}/missing.pem"},
			refused: []string{`{cfg}: github.app.private_key: read secret file named by DEPLOYBOT_GITHUB_PRIVATE_KEY_FILE: open {dir}/missing.pem: no such file or directory`}},
		{name: "an empty key file", yaml: strings.Replace(app, "app.pem", "empty.pem", 1),
			refused: []string{`{cfg}:5: github.app.private_key: secret file {dir}/empty.pem is empty`}},
		{name: "a repository without Cloudflare, Neon or master key", yaml: app + repo,
			refused: []string{
				`{cfg}: cloudflare.api_token: is not set, but repository acme/app deploy Workers to Cloudflare (set it, or DEPLOYBOT_CLOUDFLARE_API_TOKEN)`,
				`{cfg}: neon.api_key: is not set, but repository acme/app make Neon database branches for previews and tests (a pipeline file with Workers names a database.project) (set it, or DEPLOYBOT_NEON_API_KEY)`,
			},
			warnings: []string{noMasterKey}},
		{name: "the credentials given empty by variables", yaml: app + "neon: {api_key: {env: NEON}}\n" + goodMaster + repo,
			refused: []string{`{cfg}:6: neon.api_key: environment variable NEON is empty or unset`}},
		{name: "a master key too short", yaml: app + creds + "master_key: short\n" + repo,
			refused: []string{`{cfg}:8: master_key: is too weak: it holds 5 bytes (read as text), at least 32 random bytes are needed: 64 hex digits (openssl rand -hex 32) or 44 base64 characters (openssl rand -base64 32)`}},
		{name: "a master key of 16 bytes in hex", yaml: app + creds + "master_key: 0123456789abcdef0123456789abcdef\n" + repo,
			refused: []string{`{cfg}:8: master_key: is too weak: it holds 16 bytes (read as hexadecimal), at least 32 random bytes are needed: 64 hex digits (openssl rand -hex 32) or 44 base64 characters (openssl rand -base64 32)`}},
		{name: "a master key of 32 characters that read as base64", yaml: app + creds + "master_key: passwordpasswordpasswordpassword\n" + repo,
			refused: []string{`{cfg}:8: master_key: is too weak: it holds 24 bytes (read as base64), at least 32 random bytes are needed: 64 hex digits (openssl rand -hex 32) or 44 base64 characters (openssl rand -base64 32)`}},
		{name: "a master key repeated", yaml: app + creds + "master_key: " + strings.Repeat("abcd", 16) + "\n" + repo,
			refused: []string{`{cfg}:8: master_key: is too weak: it is a string of 4 characters repeated, not random bytes: use 64 hex digits (openssl rand -hex 32) or 44 base64 characters (openssl rand -base64 32)`}},
		{name: "a weak master key from the default variable", yaml: app + creds + repo,
			env:     map[string]string{config.EnvMasterKey: "master-key-4242"},
			refused: []string{`{cfg}: master_key: is too weak: it holds 11 bytes (read as base64), at least 32 random bytes are needed: 64 hex digits (openssl rand -hex 32) or 44 base64 characters (openssl rand -base64 32)`}},
		{name: "no master key", yaml: app + creds + repo, warnings: []string{noMasterKey}},
		{name: "no repositories", yaml: app, warnings: []string{noRepositories}},
		{name: "several repositories without a token", yaml: app + "neon: {api_key: n}\n" + goodMaster + repo +
			"  acme/web: {cloudflare: {account_id: acc, zone_id: zone}}\n  acme/api: {cloudflare: {account_id: acc, zone_id: zone}}\n  acme/docs: {cloudflare: {account_id: acc, zone_id: zone}}\n",
			refused: []string{`{cfg}: cloudflare.api_token: is not set, but repositories acme/api, acme/app, acme/docs and 1 more deploy Workers to Cloudflare (set it, or DEPLOYBOT_CLOUDFLARE_API_TOKEN)`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yml")
			fill := strings.NewReplacer("{dir}", dir, "{cfg}", path)
			if err := os.WriteFile(path, []byte(fill.Replace(c.yaml)), 0o600); err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{}
			for k, v := range c.env {
				vars[k] = fill.Replace(v)
			}
			var refused, warned []string
			cfg, err := config.Load(path, env(vars))
			if err == nil {
				var warnings []error
				warnings, err = cfg.CheckCredentials()
				for _, w := range warnings {
					warned = append(warned, w.Error())
				}
			}
			if err != nil {
				refused = strings.Split(err.Error(), "\n")
			}
			want := func(lines []string) []string {
				var out []string
				for _, l := range lines {
					out = append(out, fill.Replace(l))
				}
				return out
			}
			if !slices.Equal(refused, want(c.refused)) {
				t.Errorf("refused with:\n%s\nwant:\n%s", strings.Join(refused, "\n"), strings.Join(want(c.refused), "\n"))
			}
			if c.refused == nil && !slices.Equal(warned, want(c.warnings)) {
				t.Errorf("warned:\n%s\nwant:\n%s", strings.Join(warned, "\n"), strings.Join(want(c.warnings), "\n"))
			}
			for _, secret := range []string{"short", "master-key-4242", "passwordpassword", "abcdabcd", "0123456789abcdef", string(truncated)} {
				if strings.Contains(strings.ReplaceAll(strings.Join(append(refused, warned...), "\n"), path, "{cfg}"), secret) {
					t.Errorf("a message shows the secret %q", secret)
				}
			}
		})
	}
}

const (
	noRepositories = `{cfg}: repositories: none configured: deliveries are accepted, but every preview, test run and production deploy fails with "repository … is not configured" until the repository is added here`
	noMasterKey    = `{cfg}: master_key: is not set: previews and deploys whose pipeline file lists generated_secrets fail, naming it, until it is (set it, or DEPLOYBOT_MASTER_KEY, to 32 random bytes: openssl rand -hex 32)`
)

// TestRequireAppNeedsNoCloudCredentials: the commands that only need the
// App (bot sweep) are not refused for what serve needs.
func TestRequireAppNeedsNoCloudCredentials(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	cfg, err := config.Parse("config.yml", []byte("github:\n  app: {integration_id: 7, webhook_secret: s}\nrepositories:\n  acme/app: {cloudflare: {account_id: a, zone_id: z}}\n"),
		env(map[string]string{config.EnvPrivateKey: string(pemKey)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.RequireApp(); err != nil {
		t.Fatalf("RequireApp: %v", err)
	}
	if _, err := cfg.CheckCredentials(); err == nil {
		t.Fatal("CheckCredentials accepted a repository without Neon and Cloudflare credentials")
	}
}
