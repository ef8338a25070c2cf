package handlers

// The payload types below hold only the fields the bot reads. They are ours
// rather than go-github's because a webhook must not be refused over a field
// the bot ignores: GitHub's own examples carry timestamps such as
// "2018-04-25 20:42:10" that go-github's Timestamp cannot parse.

type account struct {
	Login string `json:"login"`
	Type  string `json:"type"` // "User", "Bot", "Organization"
}

type repository struct {
	ID            int64   `json:"id"`
	Name          string  `json:"name"`
	FullName      string  `json:"full_name"`
	Owner         account `json:"owner"`
	DefaultBranch string  `json:"default_branch"`
}

type installation struct {
	ID      int64   `json:"id"`
	Account account `json:"account"`
}

// envelope is what every event carries.
type envelope struct {
	Action       string        `json:"action"`
	Installation *installation `json:"installation"`
	Repository   *repository   `json:"repository"`
	Sender       *account      `json:"sender"`
}

type pullRequest struct {
	Number int     `json:"number"`
	Draft  bool    `json:"draft"`
	Merged bool    `json:"merged"`
	User   account `json:"user"`
	Head   branch  `json:"head"`
	Base   branch  `json:"base"`
}

type branch struct {
	Ref  string      `json:"ref"`
	SHA  string      `json:"sha"`
	Repo *repository `json:"repo"` // null when a fork was deleted
}

type prRef struct {
	Number int `json:"number"`
}

func prNumbers(prs []prRef) []int {
	var out []int
	for _, pr := range prs {
		out = append(out, pr.Number)
	}
	return out
}
