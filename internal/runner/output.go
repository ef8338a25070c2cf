package runner

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// mask is what a secret becomes in captured output.
const mask = "***"

// masker replaces every occurrence of the secrets in a byte stream with
// "***" before anything is stored, however the stream is split into
// writes. Where occurrences overlap or touch, the whole covered run becomes
// a single "***", so no part of any secret survives (masking "abc" and then
// looking for "bcd" in what is left would show the "d").
//
// It holds back only what may be the start of a secret: the last bytes of
// a write, when they are the beginning of one (at most the longest
// secret's length minus one byte). Everything else goes out at once, so a
// line printed before a command pauses is seen live (the run page streams
// it), not when the next write comes.
type masker struct {
	secrets [][]byte // longest first, so the first match at a position is the longest
	longest int
	first   [256]bool // bytes that start some secret; others are copied in bulk
	emit    func([]byte)

	pending []byte // undecided bytes
	covered int    // pending[:covered] lies inside a secret occurrence
	inMask  bool   // "***" was emitted for the current covered run
	scratch []byte
}

func newMasker(secrets []string, emit func([]byte)) *masker {
	m := &masker{emit: emit}
	seen := map[string]bool{}
	add := func(s string) {
		if s == "" || seen[s] {
			return
		}
		seen[s] = true
		m.secrets = append(m.secrets, []byte(s))
	}
	for _, s := range secrets {
		add(s)
		// A multi-line secret (a PEM key) printed line by line, or cut by
		// `head -1`, must not show either: mask its lines too. Tiny lines
		// ("}") would mask ordinary output, so they are skipped.
		if strings.Contains(s, "\n") {
			for _, line := range strings.Split(s, "\n") {
				if line = strings.TrimRight(line, "\r"); len(line) >= 4 {
					add(line)
				}
			}
		}
	}
	sort.SliceStable(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	for _, s := range m.secrets {
		m.first[s[0]] = true
		m.longest = max(m.longest, len(s))
	}
	return m
}

func (m *masker) Write(p []byte) {
	if len(m.secrets) == 0 {
		m.emit(p)
		return
	}
	m.pending = append(m.pending, p...)
	m.process(false)
}

// Flush decides the held-back bytes: the stream has ended.
func (m *masker) Flush() {
	if len(m.secrets) > 0 {
		m.process(true)
	}
}

func (m *masker) process(final bool) {
	buf := m.pending
	out := m.scratch[:0]
	i := 0
	for i < len(buf) {
		if !final && len(buf)-i < m.longest && m.mayStart(buf[i:]) {
			break // a secret might start here and continue in the next write
		}
		if i >= m.covered && !m.first[buf[i]] {
			// Fast path: copy up to the next byte that could start a secret.
			j := i + 1
			for j < len(buf) && !m.first[buf[j]] {
				j++
			}
			out = append(out, buf[i:j]...)
			m.inMask = false
			i = j
			continue
		}
		if m.first[buf[i]] {
			for _, s := range m.secrets {
				if bytes.HasPrefix(buf[i:], s) {
					m.covered = max(m.covered, i+len(s))
					break
				}
			}
		}
		if i < m.covered {
			if !m.inMask {
				out = append(out, mask...)
				m.inMask = true
			}
		} else {
			out = append(out, buf[i])
			m.inMask = false
		}
		i++
	}
	if len(out) > 0 {
		m.emit(out)
	}
	m.scratch = out[:0]
	m.covered = max(m.covered-i, 0)
	m.pending = append(m.pending[:0], buf[i:]...)
}

// mayStart reports whether rest, the undecided end of the stream, is the
// beginning of a secret longer than it: only then must it wait for more.
func (m *masker) mayStart(rest []byte) bool {
	if !m.first[rest[0]] {
		return false
	}
	for _, s := range m.secrets {
		if len(s) > len(rest) && bytes.HasPrefix(s, rest) {
			return true
		}
	}
	return false
}

// maskString masks a whole string at once.
func maskString(s string, secrets []string) string {
	var b strings.Builder
	m := newMasker(secrets, func(p []byte) { b.Write(p) })
	m.Write([]byte(s))
	m.Flush()
	return b.String()
}

// capped keeps the first headMax and the last tailMax bytes written to it
// and counts the rest: a command printing gigabytes costs the bot a fixed
// amount of memory, and what people need (how it started, how it failed)
// is still there.
type capped struct {
	head    []byte
	headMax int
	tail    []byte // ring buffer of tailMax bytes once full
	tailMax int
	tailPos int // next write position in tail once it is full
	total   int64
}

func newCapped(headMax, tailMax int) *capped {
	return &capped{headMax: headMax, tailMax: tailMax, head: make([]byte, 0, min(headMax, 4096))}
}

func (c *capped) Write(p []byte) {
	c.total += int64(len(p))
	if n := min(c.headMax-len(c.head), len(p)); n > 0 {
		c.head = append(c.head, p[:n]...)
		p = p[n:]
	}
	if c.tailMax == 0 || len(p) == 0 {
		return
	}
	if len(p) >= c.tailMax {
		c.tail = append(c.tail[:0], p[len(p)-c.tailMax:]...)
		c.tailPos = 0
		return
	}
	if len(c.tail) < c.tailMax {
		room := c.tailMax - len(c.tail)
		n := min(room, len(p))
		c.tail = append(c.tail, p[:n]...)
		p = p[n:]
	}
	for len(p) > 0 { // ring is full: overwrite the oldest bytes
		n := copy(c.tail[c.tailPos:], p)
		c.tailPos = (c.tailPos + n) % c.tailMax
		p = p[n:]
	}
}

// omitted is how many bytes in the middle were dropped.
func (c *capped) omitted() int64 {
	return c.total - int64(len(c.head)) - int64(len(c.tail))
}

// String returns head + tail, with a marker between them when bytes were
// dropped. The cuts are moved to character boundaries so the marker is not
// surrounded by broken UTF-8.
func (c *capped) String() string {
	tail := make([]byte, 0, len(c.tail))
	if len(c.tail) == c.tailMax {
		tail = append(tail, c.tail[c.tailPos:]...)
		tail = append(tail, c.tail[:c.tailPos]...)
	} else {
		tail = append(tail, c.tail...)
	}
	if c.omitted() == 0 {
		return string(c.head) + string(tail)
	}
	head := c.head
	cutHead, cutTail := 0, 0
	for k := 1; k <= utf8.UTFMax-1 && k <= len(head); k++ {
		if utf8.RuneStart(head[len(head)-k]) {
			if !utf8.FullRune(head[len(head)-k:]) {
				cutHead = k
			}
			break
		}
	}
	head = head[:len(head)-cutHead]
	for cutTail < utf8.UTFMax-1 && cutTail < len(tail) && !utf8.RuneStart(tail[cutTail]) {
		cutTail++
	}
	tail = tail[cutTail:]
	n := c.omitted() + int64(cutHead+cutTail)
	var b strings.Builder
	b.Grow(len(head) + len(tail) + 64)
	b.Write(head)
	if len(head) > 0 && head[len(head)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "[… %d bytes of output omitted …]\n", n)
	b.Write(tail)
	return b.String()
}
