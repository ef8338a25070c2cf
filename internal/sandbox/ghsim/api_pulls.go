package ghsim

import (
	"net/http"
	"sort"
	"time"
)

// listPulls is GET /repos/{owner}/{repo}/pulls: the repository's pull
// requests filtered by state (default open), head ("owner:branch") and base,
// sorted as GitHub does (created, newest first, unless told otherwise), a
// page at a time with a Link header. Each item is a pull-request-simple:
// without the counts and merge state a single pull request carries.
func (s *Server) listPulls(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	sortBy := q.Get("sort")
	if sortBy == "" {
		sortBy = "created"
	}
	desc := sortBy == "created"
	if d := q.Get("direction"); d != "" {
		desc = d == "desc"
	}
	head, base := q.Get("head"), q.Get("base")
	now := s.now()
	const month = 30 * 24 * time.Hour

	var list []*pull
	for _, n := range sortedPullNumbers(rp) {
		p := rp.pulls[n]
		switch {
		case state != "all" && p.state != state,
			head != "" && headLabel(p) != head,
			base != "" && p.base != base,
			// "long-running": open for more than a month, active within the last one.
			sortBy == "long-running" && (now.Sub(p.created) <= month || now.Sub(p.updated) > month):
			continue
		}
		list = append(list, p)
	}
	key := func(p *pull) int64 {
		switch sortBy {
		case "updated":
			return p.updated.UnixNano()
		case "popularity":
			return int64(countComments(rp, p.number))
		}
		return p.created.UnixNano() // created, long-running
	}
	// Ties (timestamps have a second's resolution) go by number, in the
	// same direction, so that pages never overlap.
	sort.SliceStable(list, func(i, j int) bool {
		ki, kj := key(list[i]), key(list[j])
		if ki == kj {
			ki, kj = int64(list[i].number), int64(list[j].number)
		}
		return (ki < kj) != desc
	})
	pg, link := page(s, r, list)
	objs := make([]any, 0, len(pg))
	for _, p := range pg {
		objs = append(objs, s.pullObject(template("pull-request-simple.json"), rp, p))
	}
	return paged(objs, link)
}
