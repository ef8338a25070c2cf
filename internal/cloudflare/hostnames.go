package cloudflare

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/cloudflare/cloudflare-go/v6/dns"
	"github.com/cloudflare/cloudflare-go/v6/workers"
)

// HostnameMode is how a hostname is pointed at a Worker.
type HostnameMode string

const (
	// ModeCustomDomain attaches the hostname as a Workers Custom Domain:
	// Cloudflare creates the DNS record and the certificate itself.
	ModeCustomDomain HostnameMode = "custom_domain"
	// ModeDNSRoute creates a proxied CNAME record for the hostname and a
	// Worker route "hostname/*" sending its traffic to the Worker.
	ModeDNSRoute HostnameMode = "dns_route"
)

// ManagedComment marks the DNS records the bot created, so that it never
// rewrites or deletes records someone else made.
const ManagedComment = "managed by deploybot"

// Hostname points one hostname of a zone at a Worker.
type Hostname struct {
	ZoneID string
	Name   string // e.g. "codex-preview-7.revelations.studio"
	Script string // e.g. "codex-web-preview-7"
	// Target is the CNAME record's content in ModeDNSRoute (e.g. the zone
	// apex). Traffic never reaches it: the record is proxied and the route
	// hands requests to the Worker.
	Target string
}

// RoutePattern is the Worker route pattern covering every path of a hostname.
func RoutePattern(hostname string) string { return hostname + "/*" }

// HostnameTakenError is a hostname the bot was asked to attach to one
// Worker while it serves another: it is left where it is.
type HostnameTakenError struct {
	Hostname string
	Worker   string // the Worker it belongs to ("" for a route to none)
	Want     string // the Worker the bot meant to attach it to
}

func (e *HostnameTakenError) Error() string {
	owner := fmt.Sprintf("the Worker %q", e.Worker)
	if e.Worker == "" {
		owner = "a route with no Worker"
	}
	return fmt.Sprintf("cloudflare: hostname %q belongs to %s, not %q: the bot leaves it there (detach it first, or choose another hostname in .github/deploybot.yml)", e.Hostname, owner, e.Want)
}

// AttachHostname points h.Name at h.Script in the given mode. It is safe to
// repeat. A hostname that serves another Worker is not moved: the result
// is a *HostnameTakenError.
func (c *Client) AttachHostname(ctx context.Context, mode HostnameMode, h Hostname) error {
	switch mode {
	case ModeCustomDomain:
		_, err := c.AttachCustomDomain(ctx, h.ZoneID, h.Name, h.Script)
		return err
	case ModeDNSRoute:
		if _, err := c.EnsureCNAME(ctx, h.ZoneID, h.Name, h.Target); err != nil {
			return err
		}
		_, err := c.EnsureRoute(ctx, h.ZoneID, RoutePattern(h.Name), h.Script)
		return err
	}
	return fmt.Errorf("cloudflare: attach hostname %q: unknown mode %q", h.Name, mode)
}

// DetachHostname removes what AttachHostname created for h.Name, and only
// from h.Script: a hostname serving another Worker is left as it is (h.Target
// is not needed). Missing pieces are not an error.
func (c *Client) DetachHostname(ctx context.Context, mode HostnameMode, h Hostname) error {
	switch mode {
	case ModeCustomDomain:
		return c.DetachCustomDomain(ctx, h.Name, h.Script)
	case ModeDNSRoute:
		// Route first: without it a proxied record would send visitors to the
		// CNAME target instead of failing to resolve.
		taken, err := c.deleteRoute(ctx, h.ZoneID, RoutePattern(h.Name), h.Script)
		if err != nil || taken {
			return err // the record serves another Worker's route: keep it
		}
		return c.DeleteDNSRecords(ctx, h.ZoneID, h.Name)
	}
	return fmt.Errorf("cloudflare: detach hostname %q: unknown mode %q", h.Name, mode)
}

// CustomDomain is a Workers Custom Domain.
type CustomDomain struct {
	ID       string
	ZoneID   string
	ZoneName string
	Hostname string
	Service  string // the Worker
}

// AttachCustomDomain attaches hostname (in zoneID) to a Worker, or returns the
// existing attachment. A hostname attached to another Worker is not moved
// (*HostnameTakenError): attaching would take it from whatever it serves,
// production included.
func (c *Client) AttachCustomDomain(ctx context.Context, zoneID, hostname, script string) (CustomDomain, error) {
	existing, err := c.customDomains(ctx, hostname)
	if err != nil {
		return CustomDomain{}, err
	}
	for _, d := range existing {
		if !strings.EqualFold(d.Hostname, hostname) {
			continue
		}
		if d.Service != script {
			return CustomDomain{}, &HostnameTakenError{Hostname: hostname, Worker: d.Service, Want: script}
		}
		return d, nil
	}
	var p workers.DomainUpdateParams
	set(&p.AccountID, c.accountID)
	set(&p.ZoneID, zoneID)
	set(&p.Hostname, hostname)
	set(&p.Service, script)
	// Deprecated upstream but required by the published schema.
	set(&p.Environment, "production")
	d, err := c.domains.Update(ctx, p)
	if err != nil {
		return CustomDomain{}, c.wrap(err, "attach custom domain to worker "+script, hostname)
	}
	return CustomDomain{ID: d.ID, ZoneID: d.ZoneID, ZoneName: d.ZoneName, Hostname: d.Hostname, Service: d.Service}, nil
}

// DetachCustomDomain detaches hostname from script. A hostname that is not
// attached, or attached to another Worker, is left as it is.
func (c *Client) DetachCustomDomain(ctx context.Context, hostname, script string) error {
	existing, err := c.customDomains(ctx, hostname)
	if err != nil {
		return err
	}
	for _, d := range existing {
		if !strings.EqualFold(d.Hostname, hostname) || d.Service != script {
			continue
		}
		var p workers.DomainDeleteParams
		set(&p.AccountID, c.accountID)
		_, err := c.domains.Delete(ctx, d.ID, p)
		if err = c.wrap(err, "detach custom domain", hostname); err != nil && !IsNotFound(err) {
			return err
		}
	}
	return nil
}

// ListCustomDomains lists the account's Custom Domains whose hostname starts
// with prefix ("" lists all).
func (c *Client) ListCustomDomains(ctx context.Context, prefix string) ([]CustomDomain, error) {
	all, err := c.customDomains(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []CustomDomain
	for _, d := range all {
		if hasPrefixFold(d.Hostname, prefix) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out, nil
}

func (c *Client) customDomains(ctx context.Context, hostname string) ([]CustomDomain, error) {
	var p workers.DomainListParams
	set(&p.AccountID, c.accountID)
	if hostname != "" {
		set(&p.Hostname, hostname)
	}
	page, err := c.domains.List(ctx, p)
	if err != nil {
		return nil, c.wrap(err, "list custom domains", hostname)
	}
	out := make([]CustomDomain, 0, len(page.Result))
	for _, d := range page.Result {
		out = append(out, CustomDomain{ID: d.ID, ZoneID: d.ZoneID, ZoneName: d.ZoneName, Hostname: d.Hostname, Service: d.Service})
	}
	return out, nil
}

// DNSRecord is a DNS record of a zone.
type DNSRecord struct {
	ID      string
	ZoneID  string
	Name    string
	Type    string
	Content string
	Proxied bool
	Comment string
}

// Managed reports whether the bot created the record.
func (r DNSRecord) Managed() bool { return r.Comment == ManagedComment }

// EnsureCNAME makes name a proxied CNAME to target, creating the record or
// correcting one the bot created earlier. A record for name that the bot did
// not create is left alone and reported as an error.
func (c *Client) EnsureCNAME(ctx context.Context, zoneID, name, target string) (DNSRecord, error) {
	if target == "" {
		return DNSRecord{}, fmt.Errorf("cloudflare: ensure CNAME %q: empty target", name)
	}
	existing, err := c.dnsRecords(ctx, zoneID, name, false)
	if err != nil {
		return DNSRecord{}, err
	}
	if r, ok, err := adoptCNAME(existing, name, target); ok || err != nil {
		if err != nil || (strings.EqualFold(r.Content, target) && r.Proxied) {
			return r, err
		}
		return c.updateCNAME(ctx, r, target)
	}

	var body dns.CNAMERecordParam
	set(&body.Name, name)
	set(&body.Type, dns.CNAMERecordTypeCNAME)
	set(&body.Content, target)
	set(&body.Proxied, true)
	set(&body.TTL, dns.TTL1)
	set(&body.Comment, ManagedComment)
	var p dns.RecordNewParams
	set(&p.ZoneID, zoneID)
	p.Body = body
	rec, cerr := c.records.New(ctx, p)
	if cerr == nil {
		return fromSDKRecord(zoneID, *rec), nil
	}
	// The create may have succeeded with its answer lost (then the retry was
	// refused as a duplicate): look again before failing.
	cerr = c.wrap(cerr, "create CNAME record", name)
	if again, err := c.dnsRecords(ctx, zoneID, name, false); err == nil {
		if r, ok, _ := adoptCNAME(again, name, target); ok && strings.EqualFold(r.Content, target) && r.Proxied {
			return r, nil
		}
	}
	return DNSRecord{}, cerr
}

// adoptCNAME picks the record EnsureCNAME may keep or correct among the
// records named name: ok=false means there is none and one can be created.
func adoptCNAME(records []DNSRecord, name, target string) (DNSRecord, bool, error) {
	var mine *DNSRecord
	for i, r := range records {
		if !strings.EqualFold(r.Name, name) {
			continue
		}
		if r.Type == "CNAME" && strings.EqualFold(r.Content, target) && r.Proxied {
			return r, true, nil
		}
		if !r.Managed() {
			return DNSRecord{}, false, fmt.Errorf("cloudflare: ensure CNAME %q: a %s record (id %s, content %q) not created by deploybot already exists", name, r.Type, r.ID, r.Content)
		}
		if r.Type == "CNAME" && mine == nil {
			mine = &records[i]
		}
	}
	if mine != nil {
		return *mine, true, nil
	}
	if len(records) > 0 {
		r := records[0]
		return DNSRecord{}, false, fmt.Errorf("cloudflare: ensure CNAME %q: a %s record (id %s) already exists", name, r.Type, r.ID)
	}
	return DNSRecord{}, false, nil
}

func (c *Client) updateCNAME(ctx context.Context, r DNSRecord, target string) (DNSRecord, error) {
	var body dns.CNAMERecordParam
	set(&body.Name, r.Name)
	set(&body.Type, dns.CNAMERecordTypeCNAME)
	set(&body.Content, target)
	set(&body.Proxied, true)
	set(&body.TTL, dns.TTL1)
	set(&body.Comment, ManagedComment)
	var p dns.RecordUpdateParams
	set(&p.ZoneID, r.ZoneID)
	p.Body = body
	rec, err := c.records.Update(ctx, r.ID, p)
	if err != nil {
		return DNSRecord{}, c.wrap(err, "update CNAME record", r.Name)
	}
	return fromSDKRecord(r.ZoneID, *rec), nil
}

// DeleteDNSRecords deletes the records named name that the bot created.
// Records someone else created are kept; none at all is not an error.
func (c *Client) DeleteDNSRecords(ctx context.Context, zoneID, name string) error {
	existing, err := c.dnsRecords(ctx, zoneID, name, false)
	if err != nil {
		return err
	}
	for _, r := range existing {
		if !strings.EqualFold(r.Name, name) || !r.Managed() {
			continue
		}
		var p dns.RecordDeleteParams
		set(&p.ZoneID, zoneID)
		_, err := c.records.Delete(ctx, r.ID, p)
		if err = c.wrap(err, "delete DNS record "+r.ID, name); err != nil && !IsNotFound(err) {
			return err
		}
	}
	return nil
}

// ListDNSRecords lists a zone's records whose name starts with prefix.
func (c *Client) ListDNSRecords(ctx context.Context, zoneID, prefix string) ([]DNSRecord, error) {
	recs, err := c.dnsRecords(ctx, zoneID, prefix, true)
	if err != nil {
		return nil, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	return recs, nil
}

// dnsRecords lists records by exact name, or by name prefix. The filter is
// applied again locally so that a server ignoring it cannot widen the result.
func (c *Client) dnsRecords(ctx context.Context, zoneID, name string, prefix bool) ([]DNSRecord, error) {
	const perPage = 100
	var out []DNSRecord
	for pageNo := 1; pageNo <= maxPages; pageNo++ {
		var filter dns.RecordListParamsName
		if prefix {
			if name != "" {
				set(&filter.Startswith, name)
			}
		} else {
			set(&filter.Exact, name)
		}
		var p dns.RecordListParams
		set(&p.ZoneID, zoneID)
		if name != "" {
			set(&p.Name, filter)
		}
		set(&p.Page, float64(pageNo))
		set(&p.PerPage, float64(perPage))
		page, err := c.records.List(ctx, p)
		if err != nil {
			return nil, c.wrap(err, "list DNS records", name)
		}
		for _, r := range page.Result {
			if (prefix && hasPrefixFold(r.Name, name)) || (!prefix && strings.EqualFold(r.Name, name)) {
				out = append(out, fromSDKRecord(zoneID, r))
			}
		}
		if lastPage(len(page.Result), page.ResultInfo.PerPage, perPage) {
			break
		}
	}
	return out, nil
}

func fromSDKRecord(zoneID string, r dns.RecordResponse) DNSRecord {
	return DNSRecord{ID: r.ID, ZoneID: zoneID, Name: r.Name, Type: string(r.Type), Content: r.Content, Proxied: r.Proxied, Comment: r.Comment}
}

// Route is a Worker route of a zone.
type Route struct {
	ID      string
	ZoneID  string
	Pattern string
	Script  string
}

// EnsureRoute makes pattern route to script, creating the route. A route
// with that pattern to another Worker (or to none) is not changed
// (*HostnameTakenError).
func (c *Client) EnsureRoute(ctx context.Context, zoneID, pattern, script string) (Route, error) {
	routes, err := c.routesOf(ctx, zoneID)
	if err != nil {
		return Route{}, err
	}
	for _, r := range routes {
		if r.Pattern != pattern {
			continue
		}
		if r.Script != script {
			return Route{}, &HostnameTakenError{Hostname: pattern, Worker: r.Script, Want: script}
		}
		return r, nil
	}
	var p workers.RouteNewParams
	set(&p.ZoneID, zoneID)
	set(&p.Pattern, pattern)
	set(&p.Script, script)
	res, cerr := c.routes.New(ctx, p)
	if cerr == nil {
		return Route{ID: res.ID, ZoneID: zoneID, Pattern: pattern, Script: script}, nil
	}
	// As for DNS records: a lost answer makes the retry a duplicate.
	cerr = c.wrap(cerr, "create route to worker "+script, pattern)
	if again, err := c.routesOf(ctx, zoneID); err == nil {
		for _, r := range again {
			if r.Pattern == pattern && r.Script == script {
				return r, nil
			}
		}
	}
	return Route{}, cerr
}

// DeleteRoute deletes the zone's routes with exactly this pattern to
// script; routes to other Workers stay. None is not an error.
func (c *Client) DeleteRoute(ctx context.Context, zoneID, pattern, script string) error {
	_, err := c.deleteRoute(ctx, zoneID, pattern, script)
	return err
}

// deleteRoute is DeleteRoute; taken reports a route with the pattern that
// serves another Worker and was kept.
func (c *Client) deleteRoute(ctx context.Context, zoneID, pattern, script string) (taken bool, err error) {
	routes, err := c.routesOf(ctx, zoneID)
	if err != nil {
		return false, err
	}
	for _, r := range routes {
		if r.Pattern != pattern {
			continue
		}
		if r.Script != script {
			taken = true
			continue
		}
		var p workers.RouteDeleteParams
		set(&p.ZoneID, zoneID)
		_, err := c.routes.Delete(ctx, r.ID, p)
		if err = c.wrap(err, "delete route", pattern); err != nil && !IsNotFound(err) {
			return taken, err
		}
	}
	return taken, nil
}

// ListRoutes lists a zone's routes whose pattern starts with prefix.
func (c *Client) ListRoutes(ctx context.Context, zoneID, prefix string) ([]Route, error) {
	routes, err := c.routesOf(ctx, zoneID)
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, r := range routes {
		if hasPrefixFold(r.Pattern, prefix) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pattern < out[j].Pattern })
	return out, nil
}

func (c *Client) routesOf(ctx context.Context, zoneID string) ([]Route, error) {
	var p workers.RouteListParams
	set(&p.ZoneID, zoneID)
	page, err := c.routes.List(ctx, p)
	if err != nil {
		return nil, c.wrap(err, "list routes of zone", zoneID)
	}
	out := make([]Route, 0, len(page.Result))
	for _, r := range page.Result {
		out = append(out, Route{ID: r.ID, ZoneID: zoneID, Pattern: r.Pattern, Script: r.Script})
	}
	return out, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
