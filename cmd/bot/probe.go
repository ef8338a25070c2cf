package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// probeCmd asks a running bot whether it is up: a GET of its /healthz that
// must answer 2xx within the timeout. It is the Docker image's HEALTHCHECK,
// whose slim Debian has no curl.
func probeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", stderr)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "the URL to GET")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("probe: unexpected argument %q (the URL is given with --url)", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("probe: --url %q: %w", *url, err)
	}
	// No proxy: the probe asks the bot next to it, whatever HTTP_PROXY says.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe: GET %s answered %s", *url, resp.Status)
	}
	fmt.Fprintf(stdout, "GET %s: %s\n", *url, resp.Status)
	return nil
}
