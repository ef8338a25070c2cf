package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	gh "github.com/google/go-github/v66/github"
)

// RegisteredApp is what GitHub hands over, once, at the end of the
// App-manifest flow: the App and its credentials.
type RegisteredApp struct {
	ID            int64
	Slug          string
	HTMLURL       string
	PrivateKey    []byte // PEM
	WebhookSecret string
	// ClientID and ClientSecret are the App's OAuth client, with which the
	// web interface signs people in.
	ClientID     string
	ClientSecret string
}

// ConvertManifestCode trades the code GitHub's new-App page redirected with
// for the App's id, private key and webhook secret
// (POST /app-manifests/{code}/conversions, which takes no credentials).
// v3 is the REST base URL. A code converts once, within an hour.
func ConvertManifestCode(ctx context.Context, client *http.Client, v3, code string) (*RegisteredApp, error) {
	base, err := url.Parse(strings.TrimSuffix(v3, "/") + "/")
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("github: REST API URL %q is not an absolute URL", v3)
	}
	c := gh.NewClient(client)
	c.BaseURL = base
	cfg, _, err := c.Apps.CompleteAppManifest(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("github: GitHub did not hand over the App (POST %sapp-manifests/{code}/conversions): %w", base, withoutURL(err))
	}
	app := &RegisteredApp{
		ID:            cfg.GetID(),
		Slug:          cfg.GetSlug(),
		HTMLURL:       cfg.GetHTMLURL(),
		PrivateKey:    []byte(cfg.GetPEM()),
		WebhookSecret: cfg.GetWebhookSecret(),
		ClientID:      cfg.GetClientID(),
		ClientSecret:  cfg.GetClientSecret(),
	}
	var missing []string
	for field, empty := range map[string]bool{"id": app.ID <= 0, "slug": app.Slug == "", "html_url": app.HTMLURL == "", "pem": len(app.PrivateKey) == 0, "webhook_secret": app.WebhookSecret == ""} {
		if empty {
			missing = append(missing, field)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("github: GitHub's answer for App %d lacks %s", app.ID, strings.Join(missing, ", "))
	}
	if err := checkPrivateKey(app.PrivateKey); err != nil {
		return nil, fmt.Errorf("%w (the pem GitHub handed over for App %d)", err, app.ID)
	}
	return app, nil
}

// withoutURL drops the request URL from an error: here it carries the
// code, a credential until it is used.
func withoutURL(err error) error {
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return fmt.Errorf("%d %s", er.Response.StatusCode, er.Message)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
