// Package handlers turns GitHub webhook events into intents.
//
// There is one small handler per event, in the style of palantir/policy-bot:
// parse the payload, put the delivery's identity in the logger, filter out
// what needs no work with an early return, and hand the intent to Intake,
// which stores the delivery and queues its job in one transaction. Handlers
// make no GitHub or cloud calls: a webhook is answered in milliseconds and all
// work happens in jobs.
package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/palantir/go-githubapp/githubapp"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/gitref"
	"github.com/revelations-studio/deploybot/internal/intake"
	"github.com/revelations-studio/deploybot/internal/intent"
)

// Intake durably records a delivery and queues its intent. A delivery id
// seen before is reported as a duplicate and queues nothing.
type Intake interface {
	Accept(ctx context.Context, in intent.Intent) (intake.Receipt, error)
}

// All returns a handler for every event the bot acts on.
func All(in Intake) []githubapp.EventHandler {
	b := base{intake: in}
	return []githubapp.EventHandler{
		PullRequest{b}, IssueComment{b}, CheckRun{b}, CheckSuite{b}, Push{b}, Installation{b},
	}
}

// Events are the GitHub events the handlers take.
func Events() []string {
	var out []string
	for _, h := range All(nil) {
		out = append(out, h.Handles()...)
	}
	return out
}

// BadPayloadError is a delivery whose body is not what its event promises
// (not JSON, or a ref name git forbids); the server answers 400 and stores
// nothing.
type BadPayloadError struct {
	Event, DeliveryID string
	Err               error
}

func (e *BadPayloadError) Error() string {
	return fmt.Sprintf("delivery %s: %s payload: %v", e.DeliveryID, e.Event, e.Err)
}

func (e *BadPayloadError) Unwrap() error { return e.Err }

type base struct {
	intake Intake
}

func parse(event, deliveryID string, payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return &BadPayloadError{Event: event, DeliveryID: deliveryID, Err: fmt.Errorf("not valid JSON: %w", err)}
	}
	return nil
}

// checkBranches refuses a delivery naming a branch git itself would refuse:
// GitHub never sends one, and such a name must not reach an API path, a
// resource name or a command's environment.
func checkBranches(event, deliveryID string, branches ...string) error {
	for _, b := range branches {
		if err := gitref.CheckBranch(b); err != nil {
			return &BadPayloadError{Event: event, DeliveryID: deliveryID, Err: err}
		}
	}
	return nil
}

// meta identifies a delivery. Deliveries without an installation did not
// come to a GitHub App (a repository webhook, say) and cannot be acted on.
func meta(deliveryID, event string, e envelope) (intent.Meta, bool) {
	m := intent.Meta{DeliveryID: deliveryID, Event: event, Action: e.Action}
	if e.Installation != nil {
		m.InstallationID = e.Installation.ID
	}
	if e.Sender != nil {
		m.Sender = e.Sender.Login
	}
	if r := e.Repository; r != nil {
		m.Repo = intent.Repo{ID: r.ID, Owner: r.Owner.Login, Name: r.Name, DefaultBranch: r.DefaultBranch}
	}
	return m, m.InstallationID != 0
}

// withLogger adds the delivery's installation, repository and PR to the
// context logger (the dispatcher already added event and delivery id).
func withLogger(ctx context.Context, m intent.Meta, pr int) context.Context {
	l := zerolog.Ctx(ctx).With().Int64(githubapp.LogKeyInstallationID, m.InstallationID)
	if m.Repo.Name != "" {
		l = l.Str(githubapp.LogKeyRepositoryOwner, m.Repo.Owner).Str(githubapp.LogKeyRepositoryName, m.Repo.Name)
	}
	if pr != 0 {
		l = l.Int(githubapp.LogKeyPRNum, pr)
	}
	if m.Action != "" {
		l = l.Str("github_action", m.Action)
	}
	return l.Logger().WithContext(ctx)
}

// accept queues in and tells GitHub what became of the delivery.
func (b base) accept(ctx context.Context, in intent.Intent) error {
	ctx = withLogger(ctx, in.Delivery(), intent.PRNumber(in))
	receipt, err := b.intake.Accept(ctx, in)
	if err != nil {
		return fmt.Errorf("delivery %s: %w", in.Delivery().DeliveryID, err)
	}
	logger := zerolog.Ctx(ctx)
	if receipt.Duplicate {
		setOutcome(ctx, OutcomeDuplicate)
		logger.Info().Str("intent", in.Kind()).Msg("redelivery of a known delivery: nothing queued")
	} else {
		setOutcome(ctx, OutcomeStored)
		logger.Info().Str("intent", in.Kind()).Int64("job_id", receipt.JobID).Msg("delivery stored and queued")
	}
	respond(ctx, http.StatusOK, map[string]any{
		"delivery":  in.Delivery().DeliveryID,
		"intent":    in.Kind(),
		"job_id":    receipt.JobID,
		"duplicate": receipt.Duplicate,
	})
	return nil
}

// ignore answers a delivery that needs no work. The reason goes to the debug
// log and to the response body, which GitHub shows in the App's delivery log.
func ignore(ctx context.Context, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	setOutcome(ctx, OutcomeIgnored)
	zerolog.Ctx(ctx).Debug().Str("reason", reason).Msg("delivery ignored")
	respond(ctx, http.StatusAccepted, map[string]any{"ignored": reason})
	return nil
}

func respond(ctx context.Context, status int, body map[string]any) {
	githubapp.SetResponder(ctx, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
}

// noInstallation is the reason for ignoring a delivery meta rejected.
const noInstallation = "no installation in the payload: deploybot acts only on deliveries to its GitHub App"

// What became of a delivery the handlers took, as WithOutcome tells it.
const (
	OutcomeStored    = "stored"    // stored and its job queued
	OutcomeDuplicate = "duplicate" // a redelivery: nothing queued
	OutcomeIgnored   = "ignored"   // nothing to do
)

type outcomeKey struct{}

// WithOutcome returns ctx in which the handlers write what became of the
// delivery (OutcomeStored, OutcomeDuplicate, OutcomeIgnored) to *o, for
// the server to count: a stored delivery and a redelivery are both
// answered 200. *o is left alone when the handler failed.
func WithOutcome(ctx context.Context, o *string) context.Context {
	return context.WithValue(ctx, outcomeKey{}, o)
}

func setOutcome(ctx context.Context, outcome string) {
	if o, ok := ctx.Value(outcomeKey{}).(*string); ok {
		*o = outcome
	}
}
