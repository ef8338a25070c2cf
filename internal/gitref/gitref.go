// Package gitref checks names the way git itself does, so that a branch
// name from a webhook can be refused before it reaches an API path, a
// cloud resource name or a log line as something it is not.
//
// GitHub only ever sends names git accepts; anything else in a delivery
// was forged or mangled on the way. A name like "x/../../user" is the
// reason this matters: its "." segments survive per-segment escaping, and
// URL resolution then turns /repos/o/r/git/ref/heads/x/../../user into
// /repos/o/user — a path the bot never meant to call.
package gitref

import (
	"fmt"
	"net/url"
	"strings"
)

// CheckBranch returns nil when name is a branch name git accepts (what
// `git check-ref-format --branch` checks, which is the rule for
// "refs/heads/"+name), or an error saying which rule it breaks.
func CheckBranch(name string) error {
	if name == "" {
		return fmt.Errorf("branch name is empty")
	}
	if strings.HasPrefix(name, "-") {
		return fmt.Errorf("branch name %q begins with \"-\"", name)
	}
	if name == "HEAD" {
		return fmt.Errorf("branch name %q is reserved", name)
	}
	if err := CheckRef("refs/heads/" + name); err != nil {
		return fmt.Errorf("branch name %q %s", name, why(err))
	}
	return nil
}

// CheckRef applies git's check-ref-format rules to a full ref name such as
// "refs/heads/main" (see git-check-ref-format(1)):
//
//  1. no component begins with "." or ends with ".lock";
//  2. at least one "/" (a full ref has a category);
//  3. no ".." anywhere;
//  4. no ASCII control character, space, "~", "^" or ":";
//  5. no "?", "*" or "[";
//  6. no leading or trailing "/", no "//";
//  7. no trailing ".";
//  8. no "@{";
//  9. not "@" alone;
//  10. no "\".
func CheckRef(ref string) error {
	if ref == "" {
		return refError{ref, "is empty"}
	}
	if ref == "@" {
		return refError{ref, `is "@" alone`}
	}
	if strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") {
		return refError{ref, `begins or ends with "/"`}
	}
	if !strings.Contains(ref, "/") {
		return refError{ref, `has no "/"`}
	}
	if strings.HasSuffix(ref, ".") {
		return refError{ref, `ends with "."`}
	}
	for _, bad := range []string{"..", "//", "@{"} {
		if strings.Contains(ref, bad) {
			return refError{ref, fmt.Sprintf("contains %q", bad)}
		}
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return refError{ref, fmt.Sprintf("contains the control character %#02x", c)}
		case strings.IndexByte(" ~^:?*[\\", c) >= 0:
			return refError{ref, fmt.Sprintf("contains %q", string(c))}
		}
	}
	for _, comp := range strings.Split(ref, "/") {
		if strings.HasPrefix(comp, ".") {
			return refError{ref, fmt.Sprintf("has a component beginning with \".\" (%q)", comp)}
		}
		if strings.HasSuffix(comp, ".lock") {
			return refError{ref, fmt.Sprintf("has a component ending with \".lock\" (%q)", comp)}
		}
	}
	return nil
}

// EscapePath escapes a ref for use as a run of URL path segments: each
// "/"-separated component is escaped on its own, so the slashes stay
// meaningful (GitHub's routes take refs with slashes) and "?", "#" or "%"
// stay data. The ref must have passed CheckRef or CheckBranch, which rule
// out "." and ".." components.
func EscapePath(ref string) string {
	parts := strings.Split(ref, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// IsSHA reports whether s is a full commit id: 40 (SHA-1) or 64 (SHA-256)
// lower-case hexadecimal digits, as GitHub sends them.
func IsSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

type refError struct{ ref, why string }

func (e refError) Error() string { return fmt.Sprintf("ref %q %s", e.ref, e.why) }

// why is the rule a refError names, so CheckBranch's message names the
// branch once rather than the ref it was checked as.
func why(err error) string {
	if e, ok := err.(refError); ok {
		return e.why
	}
	return err.Error()
}
