package runner

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// maskChunks feeds s to a masker in the given chunk sizes and returns what
// came out.
func maskChunks(s string, secrets []string, sizes func(remaining int) int) string {
	var b strings.Builder
	m := newMasker(secrets, func(p []byte) { b.Write(p) })
	for len(s) > 0 {
		n := min(max(sizes(len(s)), 1), len(s))
		m.Write([]byte(s[:n]))
		s = s[n:]
	}
	m.Flush()
	return b.String()
}

func TestMaskerWholeWrites(t *testing.T) {
	for _, tc := range []struct {
		in      string
		secrets []string
		want    string
	}{
		{"token=s3cr3t-value; again s3cr3t-value.", []string{"s3cr3t-value"}, "token=***; again ***."},
		{"no secrets here", []string{"s3cr3t"}, "no secrets here"},
		{"nothing to mask", nil, "nothing to mask"},
		{"empty secret ignored", []string{""}, "empty secret ignored"},
		// Overlapping and adjacent occurrences become one mask, so no
		// fragment of either secret survives.
		{"xabcdx", []string{"abc", "bcd"}, "x***x"},
		{"abcabc", []string{"abc"}, "***"},
		{"a-abc", []string{"abc", "a"}, "***-***"},
		// The longest secret wins where several start at one place.
		{"password123", []string{"pass", "password123"}, "***"},
		// Lines of a multi-line secret are masked on their own too.
		{"first line: -----BEGIN KEY-----\n", []string{"-----BEGIN KEY-----\nAAAABBBB\n-----END KEY-----"}, "first line: ***\n"},
		{"}", []string{"{\n}\n"}, "}"}, // tiny lines are not masked on their own
	} {
		if got := maskString(tc.in, tc.secrets); got != tc.want {
			t.Errorf("mask(%q, %q) = %q, want %q", tc.in, tc.secrets, got, tc.want)
		}
	}
}

// However the output is split into writes, the result is the same as
// masking it in one piece.
func TestMaskerAnySplit(t *testing.T) {
	secrets := []string{"hunter2hunter2", "postgres://u:pw@db/x", "pw", "xyzzy"}
	in := "start hunter2hunter2 mid postgres://u:pw@db/x end xyzzyxyzzy hunter2 tail pw"
	want := maskString(in, secrets)
	if strings.Contains(want, "hunter2hunter2") || strings.Contains(want, "pw") || strings.Contains(want, "xyzzy") {
		t.Fatalf("reference masking leaked: %q", want)
	}
	// Every single split point.
	for cut := 1; cut < len(in); cut++ {
		first := true
		got := maskChunks(in, secrets, func(int) int {
			if first {
				first = false
				return cut
			}
			return len(in)
		})
		if got != want {
			t.Fatalf("split at %d: %q, want %q", cut, got, want)
		}
	}
	// Byte by byte, and random chunkings.
	if got := maskChunks(in, secrets, func(int) int { return 1 }); got != want {
		t.Fatalf("byte by byte: %q, want %q", got, want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		if got := maskChunks(in, secrets, func(int) int { return 1 + r.IntN(7) }); got != want {
			t.Fatalf("random chunks: %q, want %q", got, want)
		}
	}
}

func TestCappedKeepsHeadAndTail(t *testing.T) {
	full := strings.Repeat("0123456789", 100) // 1000 bytes
	for _, chunk := range []int{1, 3, 7, 64, 1000} {
		c := newCapped(100, 50)
		for s := full; len(s) > 0; {
			n := min(chunk, len(s))
			c.Write([]byte(s[:n]))
			s = s[n:]
		}
		got := c.String()
		want := full[:100] + "\n[… 850 bytes of output omitted …]\n" + full[950:]
		if got != want {
			t.Errorf("chunk %d:\n got %q\nwant %q", chunk, got, want)
		}
	}
	// Exactly at the limit nothing is omitted and no marker appears.
	c := newCapped(100, 50)
	c.Write([]byte(full[:150]))
	if got := c.String(); got != full[:150] || c.omitted() != 0 {
		t.Errorf("at limit: %q", got)
	}
}

func TestCappedCutsAtCharacterBoundaries(t *testing.T) {
	// "é" is two bytes; put one across each cut.
	in := strings.Repeat("a", 9) + "é" + strings.Repeat("b", 100) + "é" + strings.Repeat("c", 9)
	c := newCapped(10, 10)
	c.Write([]byte(in))
	got := c.String()
	if !strings.HasPrefix(got, strings.Repeat("a", 9)+"\n[…") || !strings.HasSuffix(got, "]\n"+strings.Repeat("c", 9)) {
		t.Errorf("cut inside a character: %q", got)
	}
}

// A secret lying across the head cut must not leave its first bytes in the
// head: masking happens before cutting.
func TestSecretAcrossCutIsMasked(t *testing.T) {
	secret := "SECRET-0123456789"
	for offset := range 30 {
		in := strings.Repeat(".", offset) + secret + strings.Repeat("-", 500) + secret + strings.Repeat("_", offset)
		c := newCapped(20, 20)
		m := newMasker([]string{secret}, c.Write)
		for i := 0; i < len(in); i += 5 {
			m.Write([]byte(in[i:min(i+5, len(in))]))
		}
		m.Flush()
		out := c.String()
		for k := 4; k <= len(secret); k++ {
			if strings.Contains(out, secret[:k]) || strings.Contains(out, secret[len(secret)-k:]) {
				t.Fatalf("offset %d: part of the secret visible: %q", offset, out)
			}
		}
	}
}

// Output that cannot be the start of a secret goes out at once: the last
// line a command prints before it pauses is seen while it pauses. Only
// bytes that begin a secret wait for the next write.
func TestMaskerHoldsBackOnlyASecretsBeginning(t *testing.T) {
	var got strings.Builder
	m := newMasker([]string{"postgres://u:pw@db/x"}, func(p []byte) { got.Write(p) })
	m.Write([]byte("migrating…\n"))
	if got.String() != "migrating…\n" {
		t.Fatalf("after a line with no secret in it, %q went out; want the whole line", got.String())
	}
	m.Write([]byte("url=postgres://u:"))
	if got.String() != "migrating…\nurl=" {
		t.Fatalf("the beginning of a secret went out before the rest of it could be seen: %q", got.String())
	}
	m.Write([]byte("pw@db/x done\n"))
	m.Flush()
	if want := "migrating…\nurl=*** done\n"; got.String() != want {
		t.Fatalf("got %q, want %q", got.String(), want)
	}
}
