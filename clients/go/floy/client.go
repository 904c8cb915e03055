package floy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// UserAgent is sent with every request.
const UserAgent = "floy-go-client/1"

// maxBody bounds the answers the Client reads (a service's instance list included).
const maxBody = 64 << 20

// maxTransientPolls is how many status requests in a row may fail transiently (network
// errors, 429, 502, 503, 504) before a wait for a run gives up.
const maxTransientPolls = 20

// Client implements DeployService over floy's HTTP API (docs/http-api.md). It is safe
// for concurrent use. Build it with NewClient or FromEnvironment.
//
// The methods of the spec's interfaces use context.Background(); each has a ...Context
// variant taking a context.
type Client struct {
	baseURL      string // scheme://host[:port][/prefix], without a trailing slash
	token        string
	httpClient   *http.Client
	wait         bool
	pollInterval time.Duration
}

var _ DeployService = (*Client)(nil)

// NewClient returns a Client for the floy server at baseURL (e.g.
// "https://floy.example:8443", a path prefix allowed) that authenticates with the bearer
// token (a "deployer" token for runs, a "read" token for queries).
func NewClient(baseURL, token string, opts ...Option) (*Client, error) {
	o := options{pollInterval: DefaultPollInterval}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("floy: the API token is empty")
	}
	if strings.ContainsAny(token, "\r\n\x00") {
		return nil, errors.New("floy: the API token contains a control character")
	}
	hc, err := o.buildHTTPClient()
	if err != nil {
		return nil, err
	}
	return &Client{baseURL: base, token: token, httpClient: hc, wait: o.wait,
		pollInterval: o.pollInterval}, nil
}

// Environment variables read by FromEnvironment.
const (
	EnvURL      = "FLOY_URL"       // the server's base URL, required
	EnvToken    = "FLOY_TOKEN"     // the bearer token, required
	EnvCABundle = "FLOY_CA_BUNDLE" // optional PEM file: trust only its CAs
)

// FromEnvironment returns a Client for FLOY_URL with the token FLOY_TOKEN. When
// FLOY_CA_BUNDLE names a PEM file, only its CA certificates are trusted for the server's
// certificate (as WithCAFile, which opts may override).
func FromEnvironment(opts ...Option) (*Client, error) {
	baseURL := strings.TrimSpace(os.Getenv(EnvURL))
	if baseURL == "" {
		return nil, errors.New("floy: " + EnvURL + " is not set (the floy server's URL, e.g. https://floy.example:8443)")
	}
	token := strings.TrimSpace(os.Getenv(EnvToken))
	if token == "" {
		return nil, errors.New("floy: " + EnvToken + " is not set (a token made with `floy token add`)")
	}
	var all []Option
	if caFile := os.Getenv(EnvCABundle); caFile != "" {
		all = append(all, WithCAFile(caFile))
	}
	all = append(all, opts...)
	client, err := NewClient(baseURL, token, all...)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s, %s, %s)", err, EnvURL, EnvToken, EnvCABundle)
	}
	return client, nil
}

// MustFromEnvironment is FromEnvironment that exits the program through log.Fatal when
// the Client cannot be built: one line constructs the service,
//
//	floyDeployService := MustFromEnvironment(WaitForRuns())
func MustFromEnvironment(opts ...Option) *Client {
	client, err := FromEnvironment(opts...)
	if err != nil {
		log.Fatal(err)
	}
	return client
}

func parseBaseURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("floy: invalid server URL %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("floy: invalid server URL %q: want https://host[:port]", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("floy: invalid server URL %q: no user, query or fragment allowed", raw)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// --- DeployExecutor -------------------------------------------------------------------

// ExecuteDeployment starts a deployment: POST /v1/deployments. With WaitForRuns it
// returns once the run has ended, with the final status.
func (c *Client) ExecuteDeployment(params *DeployParams) (*DeployResult, error) {
	return c.ExecuteDeploymentContext(context.Background(), params)
}

// ExecuteDeploymentContext is ExecuteDeployment with a context (which also bounds the
// wait of WaitForRuns). When the run was started but waiting for it failed, the result
// is returned together with the error.
func (c *Client) ExecuteDeploymentContext(ctx context.Context, params *DeployParams) (*DeployResult, error) {
	if params == nil {
		return nil, invalid("params", "DeployParams is nil")
	}
	body, err := requestBody(params, func(m map[string]json.RawMessage) {
		omitZero(m, "timeout", params.Timeout)
		switch params.RetryCount {
		case 0:
			delete(m, "retry_count")
		case NoRetries:
			m["retry_count"] = json.RawMessage("0")
		}
	})
	if err != nil {
		return nil, err
	}
	var result DeployResult
	if _, err := c.do(ctx, http.MethodPost, "/v1/deployments", nil, body, &result); err != nil {
		return nil, err
	}
	if c.wait {
		final, err := c.Wait(ctx, result.DeployID)
		if err != nil {
			return &result, fmt.Errorf("floy: deployment %s started, but waiting for it failed: %w", result.DeployID, err)
		}
		result.Status = final.Status
	}
	return &result, nil
}

// GetDeploymentStatus returns the status of a deployment or rollback run:
// GET /v1/deployments/{id}.
func (c *Client) GetDeploymentStatus(deployID string) (*DeployStatus, error) {
	return c.GetDeploymentStatusContext(context.Background(), deployID)
}

// GetDeploymentStatusContext is GetDeploymentStatus with a context.
func (c *Client) GetDeploymentStatusContext(ctx context.Context, deployID string) (*DeployStatus, error) {
	status, _, err := c.status(ctx, deployID)
	return status, err
}

// CancelDeployment cancels a run: POST /v1/deployments/{id}/cancel. An answer 202 (the
// run is still stopping: Status "in_progress", CancelledAt zero) is not an error; with
// WaitForRuns the Client then waits until the run has stopped and returns its final
// status, with CancelledAt the time it ended.
func (c *Client) CancelDeployment(deployID string) (*CancelResult, error) {
	return c.CancelDeploymentContext(context.Background(), deployID)
}

// CancelDeploymentContext is CancelDeployment with a context.
func (c *Client) CancelDeploymentContext(ctx context.Context, deployID string) (*CancelResult, error) {
	if deployID == "" {
		return nil, invalid("deploy_id", "must not be empty")
	}
	var result CancelResult
	code, err := c.do(ctx, http.MethodPost, "/v1/deployments/"+escapeSegment(deployID)+"/cancel", nil, nil, &result)
	if err != nil {
		return nil, err
	}
	if c.wait && code == http.StatusAccepted && !IsTerminalStatus(result.Status) {
		final, err := c.Wait(ctx, deployID)
		if err != nil {
			return &result, fmt.Errorf("floy: cancel of %s requested, but waiting for the run to stop failed: %w", deployID, err)
		}
		result.Status = final.Status
		if final.FinishedAt != nil {
			result.CancelledAt = *final.FinishedAt
		} else {
			result.CancelledAt = final.UpdatedAt
		}
	}
	return &result, nil
}

// --- VersionManager -------------------------------------------------------------------

// GetServiceInstanceVersions returns what every instance of a service runs:
// GET /v1/services/{service}/versions.
func (c *Client) GetServiceInstanceVersions(serviceName string) (*ServiceVersions, error) {
	return c.GetServiceInstanceVersionsContext(context.Background(), serviceName)
}

// GetServiceInstanceVersionsContext is GetServiceInstanceVersions with a context.
func (c *Client) GetServiceInstanceVersionsContext(ctx context.Context, serviceName string) (*ServiceVersions, error) {
	if serviceName == "" {
		return nil, invalid("service", "must not be empty")
	}
	var result ServiceVersions
	if _, err := c.do(ctx, http.MethodGet, "/v1/services/"+escapeSegment(serviceName)+"/versions", nil, nil, &result); err != nil {
		return nil, err
	}
	return &result, nil
}

// GetServiceInstances returns one page of a service's instances:
// GET /v1/services/{service}/instances?version=&limit=&offset=. An empty Version, a zero
// Limit and a zero Offset are left out (no filter, the default 100, from the start).
func (c *Client) GetServiceInstances(params *InstanceQueryParams) (*ServiceInstances, error) {
	return c.GetServiceInstancesContext(context.Background(), params)
}

// GetServiceInstancesContext is GetServiceInstances with a context.
func (c *Client) GetServiceInstancesContext(ctx context.Context, params *InstanceQueryParams) (*ServiceInstances, error) {
	if params == nil {
		return nil, invalid("params", "InstanceQueryParams is nil")
	}
	if params.ServiceName == "" {
		return nil, invalid("service_name", "must not be empty")
	}
	query := url.Values{}
	if params.Version != "" {
		query.Set("version", params.Version)
	}
	if params.Limit != 0 {
		query.Set("limit", strconv.Itoa(params.Limit))
	}
	if params.Offset != 0 {
		query.Set("offset", strconv.Itoa(params.Offset))
	}
	var result ServiceInstances
	path := "/v1/services/" + escapeSegment(params.ServiceName) + "/instances"
	if _, err := c.do(ctx, http.MethodGet, path, query, nil, &result); err != nil {
		return nil, err
	}
	return &result, nil
}

// --- RollbackManager ------------------------------------------------------------------

// RollbackInstance rolls one instance back: POST /v1/rollbacks/instance. With
// WaitForRuns it returns once the rollback run has ended, with the final status.
func (c *Client) RollbackInstance(params *InstanceRollbackParams) (*RollbackResult, error) {
	return c.RollbackInstanceContext(context.Background(), params)
}

// RollbackInstanceContext is RollbackInstance with a context (see
// ExecuteDeploymentContext).
func (c *Client) RollbackInstanceContext(ctx context.Context, params *InstanceRollbackParams) (*RollbackResult, error) {
	if params == nil {
		return nil, invalid("params", "InstanceRollbackParams is nil")
	}
	body, err := requestBody(params, func(m map[string]json.RawMessage) {
		omitZero(m, "timeout", params.Timeout)
	})
	if err != nil {
		return nil, err
	}
	var result RollbackResult
	if _, err := c.do(ctx, http.MethodPost, "/v1/rollbacks/instance", nil, body, &result); err != nil {
		return nil, err
	}
	if c.wait {
		final, err := c.Wait(ctx, result.RollbackID)
		if err != nil {
			return &result, fmt.Errorf("floy: rollback %s started, but waiting for it failed: %w", result.RollbackID, err)
		}
		result.Status = final.Status
	}
	return &result, nil
}

// RollbackBatch rolls several instances of a service back: POST /v1/rollbacks/batch.
// With WaitForRuns it returns once the rollback run has ended, with the final status.
func (c *Client) RollbackBatch(params *BatchRollbackParams) (*BatchRollbackResult, error) {
	return c.RollbackBatchContext(context.Background(), params)
}

// RollbackBatchContext is RollbackBatch with a context (see ExecuteDeploymentContext).
func (c *Client) RollbackBatchContext(ctx context.Context, params *BatchRollbackParams) (*BatchRollbackResult, error) {
	if params == nil {
		return nil, invalid("params", "BatchRollbackParams is nil")
	}
	body, err := requestBody(params, func(m map[string]json.RawMessage) {
		omitZero(m, "timeout", params.Timeout)
	})
	if err != nil {
		return nil, err
	}
	var result BatchRollbackResult
	if _, err := c.do(ctx, http.MethodPost, "/v1/rollbacks/batch", nil, body, &result); err != nil {
		return nil, err
	}
	if c.wait {
		final, err := c.Wait(ctx, result.RollbackID)
		if err != nil {
			return &result, fmt.Errorf("floy: rollback %s started, but waiting for it failed: %w", result.RollbackID, err)
		}
		result.Status = final.Status
	}
	return &result, nil
}

// --- Waiting for a run ----------------------------------------------------------------

// Wait polls the status of a deployment or rollback run (every 0.5 s unless
// WithPollInterval says otherwise) until it has ended, and returns its last status. A
// run has ended when its status is terminal and its finished_at (floy's extension) is
// set, or absent from the answer. Transient failures of a status request (network
// errors, 429, 502, 503, 504) are retried up to 20 times in a row; any other error ends
// the wait. ctx bounds the whole wait.
func (c *Client) Wait(ctx context.Context, runID string) (*DeployStatus, error) {
	failures := 0
	for {
		status, ended, err := c.status(ctx, runID)
		switch {
		case err == nil && ended:
			return status, nil
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !isTransient(err) || failures+1 >= maxTransientPolls:
			return nil, err
		default:
			failures++
		}
		timer := time.NewTimer(c.pollInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// status fetches a run's status and whether the run has ended.
func (c *Client) status(ctx context.Context, runID string) (*DeployStatus, bool, error) {
	if runID == "" {
		return nil, false, invalid("deploy_id", "must not be empty")
	}
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, "/v1/deployments/"+escapeSegment(runID), nil, nil, &raw); err != nil {
		return nil, false, err
	}
	var status DeployStatus
	if err := json.Unmarshal(raw, &status); err != nil {
		return nil, false, fmt.Errorf("floy: decoding the status of %s: %w", runID, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, false, fmt.Errorf("floy: decoding the status of %s: %w", runID, err)
	}
	_, hasFinishedAt := keys["finished_at"]
	ended := IsTerminalStatus(status.Status) && (status.FinishedAt != nil || !hasFinishedAt)
	return &status, ended, nil
}

// isTransient reports whether a failed request may succeed if repeated.
func isTransient(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable,
			http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var netErr net.Error
	var urlErr *url.Error
	return errors.As(err, &netErr) || errors.As(err, &urlErr) || errors.Is(err, io.ErrUnexpectedEOF)
}

// --- Requests -------------------------------------------------------------------------

// escapeSegment escapes one path segment; "." and ".." are escaped too, so that no
// client or proxy on the way takes them for dot-segments.
func escapeSegment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}

// requestBody marshals a spec struct and lets adjust drop or change keys.
func requestBody(v any, adjust func(map[string]json.RawMessage)) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("floy: encoding the request: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("floy: encoding the request: %w", err)
	}
	adjust(m)
	return json.Marshal(m)
}

// omitZero drops an optional integer key whose zero value means "the server's default".
func omitZero(m map[string]json.RawMessage, key string, value int) {
	if value == 0 {
		delete(m, key)
	}
}

// do sends one request and decodes a 2xx JSON answer into out; any other answer is an
// *APIError. It returns the HTTP status code.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, out any) (int, error) {
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return 0, fmt.Errorf("floy: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return 0, err // an *url.Error naming the method and URL (never the token)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("floy: %s %s: reading the answer: %w", method, path, err)
	}
	if len(data) > maxBody {
		return resp.StatusCode, fmt.Errorf("floy: %s %s: the answer is larger than %d bytes", method, path, maxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, decodeAPIError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("floy: %s %s: decoding the answer (HTTP %d): %w", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}
