package neonsim

import (
	"strings"
	"time"
)

// The JSON shapes below follow Neon's API description and the recorded real
// answers (testdata/recorded); TestResponseShapes compares them.

const (
	regionID  = "aws-us-east-2"
	proxyHost = "us-east-2.aws.neon.tech"
)

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) projectJSON(p *project) map[string]any {
	return map[string]any{
		"data_storage_bytes_hour": 0, "data_transfer_bytes": 0, "written_data_bytes": 0,
		"compute_time_seconds": 0, "active_time_seconds": 0, "cpu_used_sec": 0,
		"id": p.ID, "platform_id": "aws", "region_id": regionID, "name": p.Name,
		"provisioner": "k8s-neonvm",
		"default_endpoint_settings": map[string]any{
			"autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 0.25, "suspend_timeout_seconds": 0,
		},
		"settings": map[string]any{
			"allowed_ips":                map[string]any{"ips": []any{}, "protected_branches_only": false},
			"enable_logical_replication": false,
		},
		"pg_version": 17, "proxy_host": proxyHost,
		"branch_logical_size_limit": 512, "branch_logical_size_limit_bytes": 536870912,
		"store_passwords": true, "creation_source": "console", "history_retention_seconds": 86400,
		"created_at": ts(p.CreatedAt), "updated_at": ts(p.CreatedAt),
		"consumption_period_start": "0001-01-01T00:00:00Z", "consumption_period_end": "0001-01-01T00:00:00Z",
		"owner_id": "00000000-0000-4000-8000-000000000000",
	}
}

// branchState is what Neon reports while operations run on a branch.
func (p *project) branchState(b *branch, now time.Time) (current, pending string, changed time.Time) {
	changed = b.CreatedAt
	for _, o := range p.operations {
		if o.BranchID != b.ID || o.Action != "create_timeline" {
			continue
		}
		if now.Before(o.Done) {
			if b.LastResetAt != nil {
				return "resetting", "ready", o.CreatedAt
			}
			return "init", "ready", o.CreatedAt
		}
		if o.Done.After(changed) {
			changed = o.Done
		}
	}
	return "ready", "", changed
}

func (s *Server) branchJSON(p *project, b *branch, now time.Time) map[string]any {
	current, pending, changed := p.branchState(b, now)
	m := map[string]any{
		"id": b.ID, "project_id": p.ID, "name": b.Name,
		"current_state": current, "state_changed_at": ts(changed),
		"logical_size": 0, "creation_source": "console",
		"primary": b.Default, "default": b.Default, "protected": b.Protected,
		"cpu_used_sec": 0, "compute_time_seconds": 0, "active_time_seconds": 0,
		"written_data_bytes": 0, "data_transfer_bytes": 0,
		"created_at": ts(b.CreatedAt), "updated_at": ts(b.UpdatedAt),
		"init_source": b.InitSource,
		"created_by":  map[string]any{"name": "deploybot sandbox"},
	}
	if pending != "" {
		m["pending_state"] = pending
	}
	if b.ParentID != "" {
		m["parent_id"] = b.ParentID
		m["parent_lsn"] = "0/1DE2850"
	}
	if b.ExpiresAt != nil {
		m["expires_at"] = ts(*b.ExpiresAt)
	}
	if b.LastResetAt != nil {
		m["last_reset_at"] = ts(*b.LastResetAt)
	}
	return m
}

func annotationJSON(b *branch) map[string]any {
	v := map[string]any{}
	for k, val := range b.Annotations {
		v[k] = val
	}
	return map[string]any{
		"object":     map[string]any{"type": "console/branch", "id": b.ID},
		"value":      v,
		"created_at": ts(b.CreatedAt),
		"updated_at": ts(b.UpdatedAt),
	}
}

func endpointHost(e *endpoint, pooled bool) string {
	if pooled {
		return e.ID + "-pooler." + proxyHost
	}
	return e.ID + "." + proxyHost
}

func (s *Server) endpointJSON(p *project, e *endpoint, now time.Time) map[string]any {
	current, pending := "active", ""
	for _, o := range p.operations {
		if o.EndpointID == e.ID && o.Action == "start_compute" && now.Before(o.Done) {
			current, pending = "init", "active"
		}
	}
	m := map[string]any{
		"host": endpointHost(e, false), "id": e.ID, "project_id": p.ID, "branch_id": e.BranchID,
		"autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 0.25,
		"region_id": regionID, "type": e.Type, "current_state": current,
		"settings": map[string]any{}, "pooler_enabled": false, "pooler_mode": "transaction",
		"disabled": false, "passwordless_access": true, "creation_source": "console",
		"created_at": ts(e.CreatedAt), "updated_at": ts(e.CreatedAt),
		"proxy_host": proxyHost, "suspend_timeout_seconds": 0, "provisioner": "k8s-neonvm",
	}
	if pending != "" {
		m["pending_state"] = pending
	}
	return m
}

func (s *Server) opJSON(p *project, o *operation, now time.Time) map[string]any {
	status := o.status(now)
	dur := o.Done.Sub(o.CreatedAt)
	if status == "running" {
		dur = now.Sub(o.CreatedAt)
	}
	m := map[string]any{
		"id": o.ID, "project_id": p.ID, "action": o.Action, "status": status,
		"failures_count": 0, "created_at": ts(o.CreatedAt), "updated_at": ts(o.CreatedAt),
		"total_duration_ms": dur.Milliseconds(),
	}
	if status == "finished" {
		m["updated_at"] = ts(o.Done)
	}
	if o.BranchID != "" {
		m["branch_id"] = o.BranchID
	}
	if o.EndpointID != "" {
		m["endpoint_id"] = o.EndpointID
	}
	return m
}

func (s *Server) roleJSON(b *branch) map[string]any {
	return map[string]any{
		"branch_id": b.ID, "name": s.opts.Role, "protected": false,
		"created_at": ts(b.CreatedAt), "updated_at": ts(b.RoleUpdatedAt),
	}
}

func (s *Server) databaseJSON(b *branch) map[string]any {
	return map[string]any{
		"id": b.DBID, "branch_id": b.ID, "name": s.opts.Database, "owner_name": s.opts.Role,
		"created_at": ts(b.CreatedAt), "updated_at": ts(b.CreatedAt),
	}
}

// connectionDetails is one connection_uris entry of a create answer, with
// the branch role's password (its parent's, on a new branch).
func (s *Server) connectionDetails(p *project, b *branch, e *endpoint) map[string]any {
	return map[string]any{
		"connection_uri": s.uri(b, false),
		"connection_parameters": map[string]any{
			"database": s.opts.Database, "password": b.Password, "role": s.opts.Role,
			"host": strings.TrimSuffix(endpointHost(e, false), "."), "pooler_host": endpointHost(e, true),
		},
	}
}
