package web

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// logPage is how many chunks one read of a run's log takes.
const logPage = 2000

// runView is what the run page shows.
type runView struct {
	Base     string // the site's root, relative to the page
	Run      state.Detail
	Title    string
	Viewer   *login.User // who is signed in (nil without sign-in)
	Target   string      // "#12" or the branch
	Duration string
	Started  string
	Live     bool // still running: the page streams it

	PRURL, CommitURL, CheckURL string
	Previews                   []link

	Steps  []stepView
	LastID int64 // the last log chunk shown: the stream goes on after it

	// Actions are the page's buttons and recent requests (nil: the pages
	// take no actions).
	Actions *actionsView

	logBytes int
}

type link struct{ Text, URL string }

// stepView is a step: its row in the timeline and its log.
type stepView struct {
	state.Step
	Duration string
	// Left and Width place its bar in the timeline, in percent of the
	// run's duration so far.
	Left, Width float64
	Log         []logPart
}

// logPart is a piece of a step's log: text, where text was cut, or a note
// on what follows.
type logPart struct {
	Text string
	Cut  int64
	Note string
}

func (h *Handler) runPage(w http.ResponseWriter, r *http.Request) {
	d, ok := h.run(w, r)
	if !ok {
		return
	}
	v, err := h.runView(r.Context(), d)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Viewer, v.Base = Viewer(r.Context()), "../"
	asked, _ := strconv.ParseInt(r.URL.Query().Get("action"), 10, 64)
	if v.Actions, err = h.runActions(r.Context(), d, asked); err != nil {
		h.fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	buf.Grow(v.logBytes + v.logBytes/8 + 32<<10) // a page is mostly its log, a little escaped
	if err := h.pages.ExecuteTemplate(&buf, "run.html", v); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

// runView reads everything the page shows of d.
func (h *Handler) runView(ctx context.Context, d state.Detail) (runView, error) {
	now := h.opts.Now()
	v := runView{Run: d, Live: !d.Ended(), Started: d.Started.UTC().Format("2006-01-02 15:04:05 UTC")}
	end := d.Finished
	if end.IsZero() {
		end = now
	}
	v.Duration = duration(end.Sub(d.Started))
	repoURL := h.opts.GitHubURL + "/" + d.Repo
	switch {
	case d.PR > 0:
		v.Target = "#" + strconv.Itoa(d.PR)
		v.PRURL = repoURL + "/pull/" + strconv.Itoa(d.PR)
	default:
		v.Target = d.Branch
	}
	v.Title = fmt.Sprintf("%s %s · %s %s", d.Kind, d.Status, d.Repo, v.Target)
	if d.HeadSHA != "" {
		v.CommitURL = repoURL + "/commit/" + d.HeadSHA
	}
	if d.CheckRunID != 0 {
		v.CheckURL = fmt.Sprintf("%s/runs/%d", repoURL, d.CheckRunID)
	}
	if d.Kind == "preview" && d.PR > 0 {
		p, found, err := h.opts.Reader.Preview(ctx, d.Repo, d.PR)
		if err != nil {
			return v, err
		}
		if found && p.State != "destroyed" {
			for _, wk := range p.Resources.Workers {
				if wk.Hostname != "" {
					v.Previews = append(v.Previews, link{Text: wk.Name, URL: h.opts.PreviewScheme + "://" + wk.Hostname})
				}
			}
		}
	}

	logs := map[string]*stepLog{}
	for after := int64(0); ; {
		chunks, err := h.opts.Reader.Log(ctx, d.ID, after, logPage)
		if err != nil {
			return v, err
		}
		for _, c := range chunks {
			l := logs[c.Step]
			if l == nil {
				l = &stepLog{}
				logs[c.Step] = l
			}
			l.add(c)
			v.logBytes += len(c.Text)
			after, v.LastID = c.ID, c.ID
		}
		if len(chunks) < logPage {
			break
		}
	}
	if err := h.addTails(ctx, d, logs); err != nil {
		return v, err
	}
	total := end.Sub(d.Started)
	for _, s := range d.Steps {
		sv := stepView{Step: s}
		if l := logs[s.Name]; l != nil {
			sv.Log = l.parts()
		}
		if !s.Started.IsZero() {
			stop := s.Finished
			if stop.IsZero() {
				stop = end
			}
			sv.Duration = duration(stop.Sub(s.Started))
			if total > 0 {
				sv.Left = clampPercent(float64(s.Started.Sub(d.Started)) / float64(total) * 100)
				sv.Width = max(clampPercent(float64(stop.Sub(s.Started))/float64(total)*100), 0.5)
				sv.Width = min(sv.Width, 100-sv.Left)
			}
		}
		v.Steps = append(v.Steps, sv)
	}
	return v, nil
}

// addTails gives the steps that ran but have no stored output their
// tail, as the check run shows it: a run from before whole logs were kept,
// or one whose log the database refused.
func (h *Handler) addTails(ctx context.Context, d state.Detail, logs map[string]*stepLog) error {
	var missing []string
	for _, s := range d.Steps {
		if logs[s.Name] == nil && !s.Started.IsZero() && !s.Finished.IsZero() {
			missing = append(missing, s.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	tails, err := h.opts.Reader.Tails(ctx, d.ID, missing)
	if err != nil {
		return err
	}
	for name, tail := range tails {
		logs[name] = &stepLog{done: []logPart{{Note: "This step's whole output was not kept: its last 8 KiB, as its check run shows them."}, {Text: tail}}}
	}
	return nil
}

// stepLog gathers a step's chunks into parts: its text, joined once, and
// where it was cut.
type stepLog struct {
	done []logPart
	text []string // chunks of the text part being gathered
}

func (l *stepLog) add(c state.LogChunk) {
	switch {
	case c.Marker && c.Cut == 0:
		// Its head filled, nothing cut yet.
	case c.Marker:
		l.endText()
		l.done = append(l.done, logPart{Cut: c.Cut})
	default:
		l.text = append(l.text, c.Text)
	}
}

func (l *stepLog) endText() {
	if len(l.text) > 0 {
		l.done = append(l.done, logPart{Text: strings.Join(l.text, "")})
		l.text = l.text[:0]
	}
}

func (l *stepLog) parts() []logPart {
	l.endText()
	return l.done
}

func clampPercent(p float64) float64 { return min(max(p, 0), 100) }

// duration is d as people read it: 850ms, 12.4s, 3m05s, 1h02m.
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

var funcs = template.FuncMap{
	"short": func(sha string) string {
		if len(sha) > 7 {
			return sha[:7]
		}
		return sha
	},
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<20:
			return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
		case n >= 1<<10:
			return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
		}
		return strconv.FormatInt(n, 10) + " bytes"
	},
	// pct formats a percentage for a style attribute.
	"pct":   func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "%" },
	"lower": strings.ToLower,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("15:04:05")
	},
}
