package pipeline

import "testing"

func TestTaggedPreview(t *testing.T) {
	cases := []struct {
		tags []string
		repo string
		pr   int
		ok   bool
	}{
		{scriptTags("acme/app", "pr-7"), "acme/app", 7, true},
		{scriptTags("acme/app", "production"), "acme/app", 0, false},
		{[]string{"deploybot-repo:acme/app", "deploybot-env:pr-7"}, "acme/app", 7, false}, // not marked as the bot's
		{[]string{"deploybot", "deploybot-env:pr-7"}, "", 7, false},
		{[]string{"deploybot", "deploybot-repo:acme/app", "deploybot-env:pr-x"}, "acme/app", 0, false},
		{nil, "", 0, false},
	}
	for _, c := range cases {
		repo, pr, ok := taggedPreview(c.tags)
		if repo != c.repo || pr != c.pr || ok != c.ok {
			t.Errorf("taggedPreview(%q) = %q, %d, %v; want %q, %d, %v", c.tags, repo, pr, ok, c.repo, c.pr, c.ok)
		}
	}
}
