package neon

import (
	"context"
	"fmt"
	"time"
)

// Operation is one of Neon's asynchronous steps (create_timeline,
// start_compute, …) started by a call.
type Operation struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	BranchID  string `json:"branch_id,omitempty"`
	Action    string `json:"action"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
}

// done reports whether the operation will not change any more, and whether
// it succeeded.
func (o Operation) done() (finished, ok bool) {
	switch o.Status {
	case "finished", "skipped":
		return true, true
	case "failed", "error", "cancelled":
		return true, false
	}
	return false, false // scheduling, running, cancelling
}

// WaitOperations polls the given operations until all have finished,
// backing off between checks, and fails when one fails or ctx ends.
func (c *Client) WaitOperations(ctx context.Context, projectID string, ops []Operation) error {
	wait := c.pollMin
	for _, op := range ops {
		for {
			finished, ok := op.done()
			if finished && ok {
				break
			}
			if finished {
				msg := op.Error
				if msg == "" {
					msg = "no error message"
				}
				return fmt.Errorf("operation %s (%s) on branch %s %s: %s", op.ID, op.Action, op.BranchID, op.Status, msg)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("waiting for operation %s (%s, %s): %w", op.ID, op.Action, op.Status, ctx.Err())
			case <-t.C:
			}
			wait = min(wait*2, c.pollMax)
			var out struct {
				Operation Operation `json:"operation"`
			}
			if _, err := c.do(ctx, "GET", projectPath(projectID, "operations", op.ID), nil, nil, &out); err != nil {
				return fmt.Errorf("check operation %s (%s): %w", op.ID, op.Action, err)
			}
			op = out.Operation
		}
	}
	return nil
}
