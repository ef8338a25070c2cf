package github

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// TruncateMarkdown returns s if it fits in max bytes, or else a prefix cut
// on a UTF-8 boundary (at a line end when one is near), a closing code
// fence if the cut left one open, and a note saying how much was left out;
// the result is at most max bytes. Bytes also bound characters, whichever
// way GitHub counts.
func TruncateMarkdown(s string, max int) string {
	if len(s) <= max {
		return s
	}
	// The note's length depends on the numbers in it; reserve enough for
	// any int.
	const reserve = 96
	keep := max - reserve
	if keep < 0 {
		return truncateBytes(s, max)
	}
	cut := truncateBytes(s, keep)
	if nl := strings.LastIndexByte(cut, '\n'); nl >= 0 && nl >= len(cut)-512 {
		cut = cut[:nl]
	}
	fence := ""
	if strings.Count(cut, "```")%2 == 1 {
		fence = "\n```"
	}
	return fmt.Sprintf("%s%s\n\n… truncated: %d of %d bytes shown.", cut, fence, len(cut), len(s))
}

// truncateBytes cuts s to at most n bytes without splitting a character.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// truncateRunes cuts s to at most n characters, ending with "…" when cut.
func truncateRunes(s string, n int) string {
	if runeCount(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func runeCount(s string) int { return utf8.RuneCountInString(s) }
