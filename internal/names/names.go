// Package names turns configured patterns such as "codex-web-preview-{pr}"
// or "push-{branch}-{sha7}" into names the clouds accept: DNS labels and
// hostnames, Cloudflare Worker script names and Neon branch names.
//
// The values come from users (a branch called "Feature/Ünïcode_ÄÖ" is
// legal in git), the rules come from the providers, and a name the provider
// rejects fails a whole preview. So every name goes through one sanitizer:
// lowercase ASCII letters and digits stay, every run of anything else becomes
// a single '-', and names too long for the provider keep a readable prefix
// plus a short hash of the original, so two long branch names that differ
// only at the end still get different previews. The same input always gives
// the same name, which is what lets a retried job find what it created.
//
// Nothing here is meant for a shell: the results are names for API calls.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Length limits of the providers.
const (
	// MaxLabel is the longest DNS label (RFC 1035).
	MaxLabel = 63
	// MaxHostname is the longest hostname in text form (RFC 1035, without
	// the trailing dot).
	MaxHostname = 253
	// MaxScriptName is the longest Cloudflare Worker script name.
	MaxScriptName = 63
	// MaxBranchName is the longest Neon branch name (maxLength in the Neon
	// API v2 description).
	MaxBranchName = 256
)

// hashLen is how many hex digits of SHA-256 mark a shortened name: 32 bits,
// so distinct long inputs collide only by bad luck (about one in four
// billion per pair), not because they share a prefix.
const hashLen = 8

// Expand replaces each {name} in pattern with vars[name]. Placeholders
// whose name is not in vars are left as they are, so a typo in a pattern is
// visible in the result (and Placeholders/Hostname report it) instead of
// silently becoming an empty string. Names are made of ASCII letters,
// digits and '_' (pr, branch, sha, sha7, repo, ...). The result is not
// sanitized: pass it to DNSLabel, ScriptName or BranchName.
func Expand(pattern string, vars map[string]string) string {
	out, _ := expand(pattern, vars)
	return out
}

// Placeholders lists the placeholder names pattern uses, in order of first
// use, for validating configuration before any event arrives. It reports a
// '{' without a matching '}' or a placeholder with an invalid name.
func Placeholders(pattern string) ([]string, error) {
	var found []string
	seen := map[string]bool{}
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '{':
			end := strings.IndexByte(pattern[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("names: pattern %q: '{' at offset %d is never closed", pattern, i)
			}
			name := pattern[i+1 : i+1+end]
			if !validVarName(name) {
				return nil, fmt.Errorf("names: pattern %q: placeholder {%s} must be letters, digits and '_'", pattern, name)
			}
			if !seen[name] {
				seen[name] = true
				found = append(found, name)
			}
			i += end + 1
		case '}':
			return nil, fmt.Errorf("names: pattern %q: '}' at offset %d has no matching '{'", pattern, i)
		}
	}
	return found, nil
}

// expand is Expand that also reports whether a placeholder was replaced and
// which ones had no value.
func expand(pattern string, vars map[string]string) (string, expansion) {
	var b strings.Builder
	var x expansion
	for i := 0; i < len(pattern); {
		c := pattern[i]
		if c == '{' {
			if end := strings.IndexByte(pattern[i+1:], '}'); end >= 0 {
				name := pattern[i+1 : i+1+end]
				if validVarName(name) {
					if v, ok := vars[name]; ok {
						b.WriteString(v)
						x.replaced = true
					} else {
						b.WriteString(pattern[i : i+end+2])
						x.missing = append(x.missing, name)
					}
					i += end + 2
					continue
				}
			}
		}
		b.WriteByte(c)
		i++
	}
	return b.String(), x
}

type expansion struct {
	replaced bool
	missing  []string
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// DNSLabel returns s as a DNS label: lowercase letters, digits and '-',
// starting and ending with a letter or digit, at most 63 characters.
// Every run of other characters (and of '-') becomes one '-', so the result
// never contains "--" (which DNS reserves at positions 3–4, as in "xn--").
// A result that would be longer keeps a prefix and ends in '-' plus 8 hex
// digits of SHA-256 of s; one that would be empty is just those 8 digits.
func DNSLabel(s string) string {
	return sanitize(s, MaxLabel, false)
}

// ScriptName returns s as a Cloudflare Worker script name: like DNSLabel
// but '_' is kept, as Cloudflare allows (pattern ^[a-z0-9_][a-z0-9-_]*$,
// at most 63 characters). Note that a name with '_' cannot be served on a
// workers.dev subdomain; patterns should prefer '-'.
func ScriptName(s string) string {
	return sanitize(s, MaxScriptName, true)
}

// BranchName returns s as a Neon branch name. Neon accepts up to 256
// characters of almost anything, but branch names show up next to worker
// names and hostnames, so they are sanitized the same way (DNSLabel's
// alphabet) and only the length limit differs.
func BranchName(s string) string {
	return sanitize(s, MaxBranchName, false)
}

// Hostname expands pattern (e.g. "codex-preview-{pr}.revelations.studio")
// into a hostname. The pattern is split into labels at '.' before
// expanding, and each label that contains a placeholder becomes one
// DNSLabel of its expansion: a branch "v1.2/fix" in "{branch}.example.com"
// gives "v1-2-fix.example.com", never extra labels. Labels without
// placeholders (the zone) are kept, lowercased, and must already be valid.
//
// It fails when a placeholder has no value, a fixed label is invalid, or the
// result exceeds 253 characters; all of these are configuration mistakes.
func Hostname(pattern string, vars map[string]string) (string, error) {
	if pattern == "" {
		return "", fmt.Errorf("names: hostname pattern is empty")
	}
	labels := strings.Split(pattern, ".")
	for i, l := range labels {
		out, x := expand(l, vars)
		if len(x.missing) > 0 {
			return "", fmt.Errorf("names: hostname pattern %q: no value for {%s}", pattern, x.missing[0])
		}
		if x.replaced {
			labels[i] = DNSLabel(out)
			continue
		}
		l = strings.ToLower(l)
		if !IsDNSLabel(l) {
			return "", fmt.Errorf("names: hostname pattern %q: label %q is not a valid DNS label", pattern, l)
		}
		labels[i] = l
	}
	host := strings.Join(labels, ".")
	if len(host) > MaxHostname {
		return "", fmt.Errorf("names: hostname pattern %q: result is %d characters, the limit is %d", pattern, len(host), MaxHostname)
	}
	return host, nil
}

// IsDNSLabel reports whether s is already a valid DNS label in the form
// DNSLabel produces: ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$.
func IsDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > MaxLabel || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// sanitize maps s onto [a-z0-9] (plus '_' when underscore), joining runs of
// anything else with a single '-', and shortens it to max with a hash.
func sanitize(s string, max int, underscore bool) string {
	b := make([]byte, 0, min(len(s), max+hashLen+1))
	pendingDash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || underscore && c == '_' {
			if pendingDash && len(b) > 0 {
				b = append(b, '-')
			}
			pendingDash = false
			b = append(b, c)
			if len(b) > max {
				break // too long already: only the prefix and the hash matter
			}
			continue
		}
		// A separator: leading ones are dropped, trailing ones never
		// written, inner runs become one '-'.
		pendingDash = true
	}
	if len(b) == 0 {
		return hash(s)
	}
	if len(b) <= max {
		return string(b)
	}
	prefix := b[:max-hashLen-1]
	for len(prefix) > 0 && prefix[len(prefix)-1] == '-' {
		prefix = prefix[:len(prefix)-1]
	}
	if len(prefix) == 0 {
		return hash(s)
	}
	return string(prefix) + "-" + hash(s)
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}
