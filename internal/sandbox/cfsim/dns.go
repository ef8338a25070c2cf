package cfsim

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

type dnsRecord struct {
	ID         string
	ZoneID     string
	ZoneName   string
	Name       string
	Type       string
	Content    string
	Proxied    bool
	TTL        float64
	Comment    *string
	Tags       []string
	Priority   *float64
	Data       map[string]any
	CreatedOn  time.Time
	ModifiedOn time.Time
}

// proxiable record types: only these can be proxied through Cloudflare.
var proxiable = map[string]bool{"A": true, "AAAA": true, "CNAME": true}

// json is the dns-records_dns-record shape (and the recorded responses').
func (rec *dnsRecord) json() map[string]any {
	tags := rec.Tags
	if tags == nil {
		tags = []string{}
	}
	data := rec.Data
	if data == nil {
		data = map[string]any{}
	}
	out := map[string]any{
		"id":          rec.ID,
		"zone_id":     rec.ZoneID,
		"zone_name":   rec.ZoneName,
		"name":        rec.Name,
		"type":        rec.Type,
		"content":     rec.Content,
		"proxiable":   proxiable[rec.Type],
		"proxied":     rec.Proxied,
		"ttl":         rec.TTL,
		"locked":      false,
		"data":        data,
		"meta":        map[string]any{"auto_added": false, "source": "primary"},
		"tags":        tags,
		"settings":    map[string]any{},
		"created_on":  timestamp(rec.CreatedOn),
		"modified_on": timestamp(rec.ModifiedOn),
	}
	if rec.Priority != nil {
		out["priority"] = *rec.Priority
	}
	// The description does not let comment be null: no comment, no key.
	if rec.Comment != nil {
		out["comment"] = *rec.Comment
	}
	return out
}

// recordInput is a create/replace/patch body (already checked against the
// description by the validator; the semantic checks are here).
type recordInput struct {
	Type     *string         `json:"type"`
	Name     *string         `json:"name"`
	Content  *string         `json:"content"`
	Proxied  *bool           `json:"proxied"`
	TTL      *float64        `json:"ttl"`
	Comment  json.RawMessage `json:"comment"`
	Tags     []string        `json:"tags"`
	Priority *float64        `json:"priority"`
	Data     map[string]any  `json:"data"`
}

// fqdn turns a record name into the full, lower-case name Cloudflare stores:
// "@" is the apex and names outside the zone get the zone appended.
func fqdn(name, zone string) string {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if name == "@" || name == "" {
		return zone
	}
	if inZone(name, zone) {
		return name
	}
	return name + "." + zone
}

// apply merges in into rec (all fields for create/replace, present ones for
// patch) and checks the result. The caller holds s.mu.
func (s *Server) applyRecord(rec *dnsRecord, in recordInput, z *Zone) (int, int, string) {
	if in.Type != nil {
		rec.Type = strings.ToUpper(*in.Type)
	}
	if in.Name != nil {
		rec.Name = fqdn(*in.Name, z.Name)
	}
	if in.Content != nil {
		rec.Content = *in.Content
	}
	if in.Proxied != nil {
		rec.Proxied = *in.Proxied
	}
	if in.TTL != nil {
		rec.TTL = *in.TTL
	}
	if in.Comment != nil {
		var c *string
		if err := json.Unmarshal(in.Comment, &c); err != nil {
			return http.StatusBadRequest, codeDNSValidation, "comment must be a string or null"
		}
		if c != nil && *c == "" {
			c = nil
		}
		rec.Comment = c
	}
	if in.Tags != nil {
		rec.Tags = in.Tags
	}
	if in.Priority != nil {
		rec.Priority = in.Priority
	}
	if in.Data != nil {
		rec.Data = in.Data
	}
	if rec.TTL == 0 {
		rec.TTL = 1
	}
	switch rec.Type {
	case "":
		return http.StatusBadRequest, codeDNSValidation, "DNS Validation Error: type is required"
	case "A":
		if ip := net.ParseIP(rec.Content); ip == nil || ip.To4() == nil {
			return http.StatusBadRequest, codeDNSValidation, "DNS Validation Error: Content for A record is invalid. Must be a valid IPv4 address"
		}
	case "AAAA":
		if ip := net.ParseIP(rec.Content); ip == nil || ip.To4() != nil {
			return http.StatusBadRequest, codeDNSValidation, "DNS Validation Error: Content for AAAA record is invalid. Must be a valid IPv6 address"
		}
	case "CNAME":
		target := strings.ToLower(strings.TrimSuffix(rec.Content, "."))
		if target == "" || strings.ContainsAny(target, " /") {
			return http.StatusBadRequest, codeDNSValidation, "DNS Validation Error: Content for CNAME record is invalid. Must be a valid hostname"
		}
		if target == rec.Name {
			return http.StatusBadRequest, codeDNSValidation, "DNS Validation Error: CNAME content cannot reference itself"
		}
	case "MX":
		if rec.Priority == nil {
			return http.StatusBadRequest, codeDNSValidation, "DNS Validation Error: MX records need a priority"
		}
	}
	if rec.Proxied && !proxiable[rec.Type] {
		return http.StatusBadRequest, codeDNSNotProxiable, fmt.Sprintf("This record type cannot be proxied: %s", rec.Type)
	}
	if rec.TTL != 1 && (rec.TTL < 60 || rec.TTL > 86400) {
		return http.StatusBadRequest, codeDNSValidation, "DNS Validation Error: TTL must be between 60 and 86400 seconds, or 1 for Automatic"
	}
	// A CNAME cannot share its name with any other record, and a name taken
	// by a Workers Custom Domain is Cloudflare's.
	for _, o := range s.records {
		if o.ID == rec.ID || o.ZoneID != rec.ZoneID || o.Name != rec.Name {
			continue
		}
		if o.Type == rec.Type && strings.EqualFold(o.Content, rec.Content) {
			return http.StatusBadRequest, codeDNSIdentical, "An identical record already exists."
		}
		if o.Type == "CNAME" || rec.Type == "CNAME" {
			return http.StatusBadRequest, codeDNSHostConflict, "An A, AAAA, or CNAME record with that host already exists."
		}
	}
	for _, d := range s.domains {
		if d.Hostname == rec.Name {
			return http.StatusBadRequest, codeDNSHostConflict, "An A, AAAA, or CNAME record with that host already exists. (It is managed by a Workers Custom Domain.)"
		}
	}
	return 0, 0, ""
}

func (s *Server) createRecord(w http.ResponseWriter, r *http.Request, z *Zone) {
	in, ok := body[recordInput](w, r, codeDNSValidation)
	if !ok {
		return
	}
	now := s.now()
	rec := &dnsRecord{ID: s.newID(), ZoneID: z.ID, ZoneName: z.Name, CreatedOn: now, ModifiedOn: now}
	if status, code, msg := s.applyRecord(rec, in, z); status != 0 {
		writeAPIError(w, status, code, msg)
		return
	}
	s.records[rec.ID] = rec
	writeResult(w, http.StatusOK, rec.json())
}

// onRecord wraps a handler of one DNS record: the zone's preamble, then
// the record named in the path (404 when the zone has none).
func (s *Server) onRecord(h func(w http.ResponseWriter, r *http.Request, z *Zone, rec *dnsRecord)) func(http.ResponseWriter, *http.Request) {
	return s.onZone(func(w http.ResponseWriter, r *http.Request, z *Zone) {
		belongs := func(rec *dnsRecord) bool { return rec.ZoneID == z.ID }
		if rec, ok := lookup(w, s.records, r.PathValue("dns_record_id"), belongs, codeDNSRecordMissing, "Record does not exist."); ok {
			h(w, r, z, rec)
		}
	})
}

func (s *Server) replaceRecord(w http.ResponseWriter, r *http.Request, z *Zone, rec *dnsRecord) {
	s.updateRecord(w, r, z, rec, true)
}

func (s *Server) patchRecord(w http.ResponseWriter, r *http.Request, z *Zone, rec *dnsRecord) {
	s.updateRecord(w, r, z, rec, false)
}

func (s *Server) updateRecord(w http.ResponseWriter, r *http.Request, z *Zone, rec *dnsRecord, replace bool) {
	in, ok := body[recordInput](w, r, codeDNSValidation)
	if !ok {
		return
	}
	next := *rec
	if replace {
		// PUT overwrites: what is not sent goes back to its default.
		next = dnsRecord{ID: rec.ID, ZoneID: rec.ZoneID, ZoneName: rec.ZoneName, CreatedOn: rec.CreatedOn}
	}
	next.ModifiedOn = s.now()
	if status, code, msg := s.applyRecord(&next, in, z); status != 0 {
		writeAPIError(w, status, code, msg)
		return
	}
	*rec = next
	writeResult(w, http.StatusOK, rec.json())
}

func (s *Server) deleteRecord(w http.ResponseWriter, _ *http.Request, _ *Zone, rec *dnsRecord) {
	delete(s.records, rec.ID)
	writeResult(w, http.StatusOK, map[string]any{"id": rec.ID})
}

// listRecords implements the filters the bot and wrangler use: name (exact,
// and the name.exact/startswith/endswith/contains forms), type, content,
// proxied and comment, combined with AND (match=any is not simulated).
func (s *Server) listRecords(w http.ResponseWriter, r *http.Request, z *Zone) {
	page, perPage, ok := pageParams(w, r, 100, 5000)
	if !ok {
		return
	}
	q := r.URL.Query()
	match := func(rec *dnsRecord) bool {
		name := rec.Name
		for key, test := range map[string]func(v string) bool{
			"name":            func(v string) bool { return name == fqdn(v, z.Name) },
			"name.exact":      func(v string) bool { return name == fqdn(v, z.Name) },
			"name.startswith": func(v string) bool { return strings.HasPrefix(name, strings.ToLower(v)) },
			"name.endswith":   func(v string) bool { return strings.HasSuffix(name, strings.ToLower(v)) },
			"name.contains":   func(v string) bool { return strings.Contains(name, strings.ToLower(v)) },
			"type":            func(v string) bool { return rec.Type == strings.ToUpper(v) },
			"content":         func(v string) bool { return strings.EqualFold(rec.Content, v) },
			"content.exact":   func(v string) bool { return strings.EqualFold(rec.Content, v) },
			"proxied":         func(v string) bool { b, _ := strconv.ParseBool(v); return rec.Proxied == b },
			"comment":         func(v string) bool { return rec.Comment != nil && strings.EqualFold(*rec.Comment, v) },
			"comment.exact":   func(v string) bool { return rec.Comment != nil && strings.EqualFold(*rec.Comment, v) },
		} {
			if q.Has(key) && !test(q.Get(key)) {
				return false
			}
		}
		return true
	}
	var all []map[string]any
	for _, rec := range s.sortedRecords() {
		if rec.ZoneID == z.ID && match(rec) {
			all = append(all, rec.json())
		}
	}
	if all == nil {
		all = []map[string]any{}
	}
	items, info := paginate(all, page, perPage)
	writeList(w, items, info)
}

func (s *Server) sortedRecords() []*dnsRecord {
	out := make([]*dnsRecord, 0, len(s.records))
	for _, rec := range s.records {
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.ID < b.ID
	})
	return out
}
