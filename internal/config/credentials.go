package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MinMasterKeyBytes is how much key material master_key must hold: the
// generated secrets are HMAC-SHA256 of it, and a key shorter than the hash
// would make them easier to guess than the hash allows.
const MinMasterKeyBytes = 32

// CheckCredentials reports, before anything is started, what `bot serve`
// lacks to carry out the work it would accept. It reads only the config: no
// network, no database. err joins the refusals, one line each naming the
// file, line and key; warnings are problems that leave useful work possible,
// each its own line in the same form.
//
// Refused (the bot would accept work it cannot carry out):
//   - the App's id or private key is missing, or the key is not an RSA
//     private key in PEM (see RequireApp);
//   - repositories are configured but cloudflare.api_token is not: each
//     configured repository deploys Workers to its Cloudflare account;
//   - repositories are configured but neon.api_key is not: a pipeline file
//     with Workers must name a Neon project (repoconfig), so each of them
//     makes database branches;
//   - master_key is set but weak (see MasterKeyStrength).
//
// Warned (most of the work goes on):
//   - master_key is not set while repositories are: only the pipeline files
//     that list generated_secrets fail, each naming the key;
//   - no repository is configured: deliveries are stored and answered, and
//     each run fails saying the repository is not configured.
func (c *Config) CheckCredentials() (warnings []error, err error) {
	var errs []error
	if err := c.RequireApp(); err != nil {
		errs = append(errs, err)
	}
	repos := c.repositoryNames()
	if len(repos) == 0 {
		warnings = append(warnings, c.lines.Errorf(c.file, "repositories", "none configured: deliveries are accepted, but every preview, test run and production deploy fails with \"repository … is not configured\" until the repository is added here"))
	}
	if len(repos) > 0 && c.Cloudflare.APIToken.Value() == "" {
		errs = append(errs, c.lines.Errorf(c.file, "cloudflare.api_token", "is not set, but %s deploy Workers to Cloudflare (set it, or %s)", listRepos(repos), EnvCloudflareToken))
	}
	if len(repos) > 0 && c.Neon.APIKey.Value() == "" {
		errs = append(errs, c.lines.Errorf(c.file, "neon.api_key", "is not set, but %s make Neon database branches for previews and tests (a pipeline file with Workers names a database.project) (set it, or %s)", listRepos(repos), EnvNeonAPIKey))
	}
	switch key := c.MasterKey.Value(); {
	case key != "":
		if err := MasterKeyStrength(key); err != nil {
			errs = append(errs, c.lines.Errorf(c.file, "master_key", "%v", err))
		}
	case len(repos) > 0:
		warnings = append(warnings, c.lines.Errorf(c.file, "master_key", "is not set: previews and deploys whose pipeline file lists generated_secrets fail, naming it, until it is (set it, or %s, to 32 random bytes: openssl rand -hex 32)", EnvMasterKey))
	}
	return warnings, errors.Join(errs...)
}

// KeyError is an error about key in the form of every config error: the
// file, the key's line when the file has it, and the key.
func (c *Config) KeyError(key, format string, args ...any) error {
	return c.lines.Errorf(c.file, key, format, args...)
}

// Source says where a secret was read from, for errors about its value
// (never the value): "file /run/secrets/app.pem", "variable NAME" or "the
// config file".
func (s Secret) Source() string {
	switch {
	case s.file != "" && s.defaultEnv != "":
		return "file " + s.file + " (" + s.defaultEnv + "_FILE)"
	case s.file != "":
		return "file " + s.file
	case s.env != "":
		return "variable " + s.env
	case s.defaultEnv != "":
		return "variable " + s.defaultEnv
	case s.set:
		return "the config file"
	}
	return "nowhere"
}

// MasterKeyStrength refuses a master key that cannot hold
// MinMasterKeyBytes random bytes. The key is read the way people make one:
// hexadecimal digits (openssl rand -hex 32: 64 digits, 32 bytes), else
// base64 (openssl rand -base64 32: 44 characters), else its characters count
// one byte each. A key that is one short string repeated
// ("abcabcabc…") is refused however long. The error never contains the key.
func MasterKeyStrength(key string) error {
	n, form := keyBytes(key)
	const how = "64 hex digits (openssl rand -hex 32) or 44 base64 characters (openssl rand -base64 32)"
	if n < MinMasterKeyBytes {
		return fmt.Errorf("is too weak: it holds %d bytes (read as %s), at least %d random bytes are needed: %s", n, form, MinMasterKeyBytes, how)
	}
	if p := period(key); p > 0 {
		return fmt.Errorf("is too weak: it is a string of %d characters repeated, not random bytes: use %s", p, how)
	}
	return nil
}

// keyBytes is how many bytes key holds, and how it was read.
func keyBytes(key string) (int, string) {
	if len(key)%2 == 0 {
		if b, err := hex.DecodeString(key); err == nil {
			return len(b), "hexadecimal"
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(key); err == nil {
			return len(b), "base64"
		}
	}
	return len(key), "text"
}

// period is the length of the shortest string s is a repetition of (at
// least twice), or 0.
func period(s string) int {
	for p := 1; p <= len(s)/2; p++ {
		if len(s)%p == 0 && strings.Repeat(s[:p], len(s)/p) == s {
			return p
		}
	}
	return 0
}

// CheckAppPrivateKey reports why pemKey is not what GitHub gives an App:
// an RSA private key in PEM, PKCS#1 ("BEGIN RSA PRIVATE KEY", as GitHub
// downloads it) or PKCS#8 ("BEGIN PRIVATE KEY"). The error never contains
// key material.
func CheckAppPrivateKey(pemKey []byte) error {
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return errors.New("is not a PEM-encoded RSA private key (the file GitHub gives begins with -----BEGIN RSA PRIVATE KEY-----)")
	}
	if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return errors.New("is an encrypted PEM key: give the key as GitHub gave it, unencrypted")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return errors.New("is a PEM block \"RSA PRIVATE KEY\" whose content is not a valid RSA key (a truncated or edited file?)")
		}
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return errors.New("is a PEM block \"PRIVATE KEY\" whose content is not a valid PKCS#8 key (a truncated or edited file?)")
		}
		switch k.(type) {
		case *rsa.PrivateKey:
		case *ecdsa.PrivateKey:
			return errors.New("is an ECDSA key, not an RSA key: GitHub Apps sign with RSA")
		case ed25519.PrivateKey:
			return errors.New("is an Ed25519 key, not an RSA key: GitHub Apps sign with RSA")
		default:
			return errors.New("is not an RSA key: GitHub Apps sign with RSA")
		}
	default:
		return fmt.Errorf("is a PEM block %q, not an RSA private key (the file GitHub gives begins with -----BEGIN RSA PRIVATE KEY-----)", block.Type)
	}
	return nil
}

func (c *Config) repositoryNames() []string {
	names := make([]string, 0, len(c.Repositories))
	for name := range c.Repositories {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// listRepos names the repositories in a sentence: "repository a/b" or
// "repositories a/b, c/d and 3 more".
func listRepos(names []string) string {
	if len(names) == 1 {
		return "repository " + names[0]
	}
	const shown = 3
	if len(names) <= shown {
		return "repositories " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("repositories %s and %d more", strings.Join(names[:shown], ", "), len(names)-shown)
}
