package floy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "s3cret-token"

// recorded is one request as the test server saw it.
type recorded struct {
	Method  string
	Path    string // decoded path
	RawPath string // path as sent (escaped)
	Query   map[string][]string
	Header  http.Header
	Body    []byte
}

// fakeServer answers requests with a handler and records them.
type fakeServer struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	requests []recorded
	handler  func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newFakeServer(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, handler: handler}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, recorded{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(),
			Query: r.URL.Query(), Header: r.Header.Clone(), Body: body,
		})
		f.mu.Unlock()
		f.handler(w, r, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) all() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *fakeServer) client(opts ...Option) *Client {
	f.t.Helper()
	c, err := NewClient(f.srv.URL, testToken, opts...)
	if err != nil {
		f.t.Fatalf("NewClient: %v", err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func bodyKeys(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("request body is not a JSON object: %v: %s", err, body)
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// A status answer as floy writes it (DeployStatus.to_dict): microsecond UTC times with
// "Z", nulls for unset times, extension keys included.
func statusJSON(id, status string, finished bool) string {
	finishedAt := "null"
	completedAt := "null"
	if finished {
		finishedAt = `"2026-11-24T00:41:49.654321Z"`
		completedAt = `"2026-11-24T00:41:48.000001Z"`
	}
	return fmt.Sprintf(`{"deploy_id": %q, "service": "user-service", "version": "v1.2.3",
		"status": %q,
		"progress": {"total": 2, "completed": 1, "failed": 0, "pending": 1, "in_progress": 1,
		             "cancelled": 0},
		"instances": [
		  {"instance_id": "instance-1", "current_version": "v1.2.3", "target_version": "v1.2.3",
		   "started_at": "2026-11-24T00:41:40.123456Z", "completed_at": %s,
		   "error_message": "", "status": "completed", "attempts": 1, "phase": "",
		   "batch": 1, "previous_version": "v1.2.2"},
		  {"instance_id": "instance-2", "current_version": "", "target_version": "v1.2.3",
		   "started_at": null, "completed_at": null, "error_message": "",
		   "status": "pending", "attempts": 0, "phase": "", "batch": 2,
		   "previous_version": ""}],
		"started_at": "2026-11-24T00:41:40.000000Z",
		"updated_at": "2026-11-24T00:41:41.500000Z",
		"kind": "deploy", "error_message": "", "batch_size": "1", "max_failures": 0,
		"rollback_id": "", "finished_at": %s}`, id, status, completedAt, finishedAt)
}

// --- Construction ---------------------------------------------------------------------

func TestNewClientRejectsBadInput(t *testing.T) {
	cases := []struct{ url, token, want string }{
		{"", testToken, "invalid server URL"},
		{"floy.example:8443", testToken, "invalid server URL"},
		{"ftp://floy.example", testToken, "invalid server URL"},
		{"https://", testToken, "invalid server URL"},
		{"https://u:p@floy.example", testToken, "no user"},
		{"https://floy.example?x=1", testToken, "no user, query"},
		{"https://floy.example", "", "token is empty"},
		{"https://floy.example", "  \n", "token is empty"},
		{"https://floy.example", "a\nb", "control character"},
	}
	for _, tc := range cases {
		_, err := NewClient(tc.url, tc.token)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClient(%q, %q) = %v, want an error containing %q", tc.url, tc.token, err, tc.want)
		}
	}
}

func TestBaseURLWithPrefixAndTrailingSlash(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, `{"service": "web", "instances": [], "version_summary": {},
			"total_instances": 0, "updated_at": "2026-11-24T00:41:40.000000Z"}`)
	})
	c, err := NewClient(srv.srv.URL+"/floy/", testToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetServiceInstanceVersions("web"); err != nil {
		t.Fatal(err)
	}
	if got := srv.all()[0].Path; got != "/floy/v1/services/web/versions" {
		t.Errorf("path = %q", got)
	}
}

func TestFromEnvironmentNeedsURLAndToken(t *testing.T) {
	t.Setenv(EnvURL, "")
	t.Setenv(EnvToken, testToken)
	t.Setenv(EnvCABundle, "")
	if _, err := FromEnvironment(); err == nil || !strings.Contains(err.Error(), "FLOY_URL is not set") {
		t.Errorf("without FLOY_URL: %v", err)
	}
	t.Setenv(EnvURL, "https://floy.example")
	t.Setenv(EnvToken, "")
	if _, err := FromEnvironment(); err == nil || !strings.Contains(err.Error(), "FLOY_TOKEN is not set") {
		t.Errorf("without FLOY_TOKEN: %v", err)
	}
	t.Setenv(EnvToken, testToken)
	t.Setenv(EnvCABundle, filepath.Join(t.TempDir(), "missing.pem"))
	if _, err := FromEnvironment(); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("with a missing CA bundle: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvCABundle, empty)
	if _, err := FromEnvironment(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("with a CA bundle without certificates: %v", err)
	}
}

// tlsServer is an HTTPS test server answering a versions query, and the PEM file of the
// certificate it presents (self-signed, so it is its own CA).
func tlsServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			writeJSON(w, 401, `{"error": "unauthenticated", "message": "no token"}`)
			return
		}
		writeJSON(w, 200, `{"service": "web", "instances": [], "version_summary": {"1.0": 2},
			"total_instances": 2, "updated_at": "2026-11-24T00:41:40.000000Z"}`)
	}))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

// otherCAFile writes a fresh self-signed CA certificate (PEM) and returns its path.
func otherCAFile(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFromEnvironmentTrustsTheCABundle(t *testing.T) {
	srv, caFile := tlsServer(t)
	t.Setenv(EnvURL, srv.URL)
	t.Setenv(EnvToken, testToken+"\n") // as read from a file: trimmed
	t.Setenv(EnvCABundle, caFile)
	c, err := FromEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	versions, err := c.GetServiceInstanceVersions("web")
	if err != nil {
		t.Fatalf("over TLS with FLOY_CA_BUNDLE: %v", err)
	}
	if versions.VersionSummary["1.0"] != 2 {
		t.Errorf("version summary = %v", versions.VersionSummary)
	}
}

func TestCAFileIsTheOnlyTrust(t *testing.T) {
	srv, _ := tlsServer(t)
	otherCA := otherCAFile(t) // a CA that did not sign the server's certificate
	c, err := NewClient(srv.URL, testToken, WithCAFile(otherCA))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetServiceInstanceVersions("web")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("with another CA: %v, want a certificate error", err)
	}
	// Without any CA option the system trust store does not know the test certificate.
	c, err = NewClient(srv.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = c.GetServiceInstanceVersions("web"); err == nil {
		t.Fatal("the test certificate was trusted without a CA file")
	}
}

func TestWithHTTPClientAndCAFile(t *testing.T) {
	srv, caFile := tlsServer(t)
	base := &http.Client{Timeout: 7 * time.Second}
	c, err := NewClient(srv.URL, testToken, WithHTTPClient(base), WithCAFile(caFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetServiceInstanceVersions("web"); err != nil {
		t.Fatal(err)
	}
	if base.Transport != nil {
		t.Error("WithCAFile changed the caller's http.Client")
	}
	if c.httpClient.Timeout != 7*time.Second {
		t.Errorf("timeout = %v, want the caller's 7s", c.httpClient.Timeout)
	}
	odd := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("unused")
	})}
	if _, err := NewClient(srv.URL, testToken, WithHTTPClient(odd), WithCAFile(caFile)); err == nil ||
		!strings.Contains(err.Error(), "*http.Transport") {
		t.Errorf("a CA file with a custom RoundTripper: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestWithHTTPClientIsUsed(t *testing.T) {
	var seen []string
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.Method+" "+r.URL.String())
		return &http.Response{StatusCode: 404, Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(`{"error": "not_found", "message": "no"}`))}, nil
	})}
	c, err := NewClient("https://floy.example:8443", testToken, WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDeploymentStatus("d1"); !IsNotFound(err) {
		t.Fatalf("err = %v", err)
	}
	if len(seen) != 1 || seen[0] != "GET https://floy.example:8443/v1/deployments/d1" {
		t.Errorf("requests = %v", seen)
	}
}

func TestDefaultsAndWithTimeout(t *testing.T) {
	c, err := NewClient("https://floy.example", testToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.httpClient.Timeout != DefaultTimeout || c.wait || c.pollInterval != DefaultPollInterval {
		t.Errorf("defaults: timeout %v, wait %v, poll %v", c.httpClient.Timeout, c.wait, c.pollInterval)
	}
	block := make(chan struct{})
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	defer close(block)
	c = srv.client(WithTimeout(100 * time.Millisecond))
	start := time.Now()
	_, err = c.GetDeploymentStatus("slow")
	if err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("err = %v, want a client timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("the timeout took %v", elapsed)
	}
}

// --- Requests -------------------------------------------------------------------------

func TestExecuteDeploymentRequest(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 202, `{"deploy_id": "deploy-12345", "service": "user-service",
			"version": "v1.2.3", "status": "pending", "total_instances": 2,
			"started_at": "2026-11-24T00:41:40.123456Z"}`)
	})
	c := srv.client()
	result, err := c.ExecuteDeployment(&DeployParams{
		Service: "user-service", Version: "v1.2.3", Instances: []string{"instance-1", "instance-2"},
		PackageURL: "https://packages.example.com/user-service/v1.2.3.tar.gz",
		DeployID:   "deploy-12345", Timeout: 300, RetryCount: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &DeployResult{DeployID: "deploy-12345", Service: "user-service", Version: "v1.2.3",
		Status: StatusPending, TotalInstances: 2,
		StartedAt: time.Date(2026, 11, 24, 0, 41, 40, 123456000, time.UTC)}
	if !reflect.DeepEqual(result, want) {
		t.Errorf("result = %+v\nwant %+v", result, want)
	}
	reqs := srv.all()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1 (no wait without WaitForRuns)", len(reqs))
	}
	req := reqs[0]
	if req.Method != "POST" || req.Path != "/v1/deployments" {
		t.Errorf("request = %s %s", req.Method, req.Path)
	}
	for header, value := range map[string]string{
		"Authorization": "Bearer " + testToken, "Content-Type": "application/json",
		"Accept": "application/json", "User-Agent": UserAgent,
	} {
		if got := req.Header.Get(header); got != value {
			t.Errorf("%s = %q, want %q", header, got, value)
		}
	}
	body := bodyKeys(t, req.Body)
	wantBody := map[string]any{
		"service": "user-service", "version": "v1.2.3",
		"instances":   []any{"instance-1", "instance-2"},
		"package_url": "https://packages.example.com/user-service/v1.2.3.tar.gz",
		"deploy_id":   "deploy-12345", "timeout": 300.0, "retry_count": 3.0,
	}
	if !reflect.DeepEqual(body, wantBody) {
		t.Errorf("body = %v\nwant %v", body, wantBody)
	}
}

func TestDeployBodyDefaultsAndExtensions(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 202, `{"deploy_id": "d", "service": "s", "version": "1", "status": "pending",
			"total_instances": 1, "started_at": "2026-11-24T00:41:40.000000Z"}`)
	})
	c := srv.client()
	cases := []struct {
		params DeployParams
		want   map[string]any // keys beyond service, version, instances, package_url, deploy_id
	}{
		{DeployParams{}, map[string]any{}},
		{DeployParams{Timeout: 60, RetryCount: NoRetries}, map[string]any{"timeout": 60.0, "retry_count": 0.0}},
		{DeployParams{RetryCount: 5}, map[string]any{"retry_count": 5.0}},
		{DeployParams{BatchSize: "25%", MaxFailures: 1, PackageSHA256: "ab12", AutoRollback: true},
			map[string]any{"batch_size": "25%", "max_failures": 1.0, "package_sha256": "ab12",
				"auto_rollback": true}},
	}
	for i, tc := range cases {
		p := tc.params
		p.Service, p.Version, p.Instances, p.PackageURL, p.DeployID = "s", "1", []string{"i"}, "https://p/x.tgz", "d"
		if _, err := c.ExecuteDeployment(&p); err != nil {
			t.Fatal(err)
		}
		body := bodyKeys(t, srv.all()[i].Body)
		for _, k := range []string{"service", "version", "instances", "package_url", "deploy_id"} {
			if _, ok := body[k]; !ok {
				t.Errorf("case %d: %s missing", i, k)
			}
			delete(body, k)
		}
		if !reflect.DeepEqual(body, tc.want) {
			t.Errorf("case %d: optional keys = %v, want %v", i, body, tc.want)
		}
	}
}

func TestGetDeploymentStatusDecodesFloyJSON(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, statusJSON("deploy-12345", StatusInProgress, false))
	})
	st, err := srv.client().GetDeploymentStatus("deploy-12345")
	if err != nil {
		t.Fatal(err)
	}
	if req := srv.all()[0]; req.Method != "GET" || req.Path != "/v1/deployments/deploy-12345" ||
		len(req.Body) != 0 || req.Header.Get("Content-Type") != "" {
		t.Errorf("request = %+v", req)
	}
	if st.Status != StatusInProgress || st.Kind != "deploy" || st.FinishedAt != nil {
		t.Errorf("status = %+v", st)
	}
	if st.Progress != (Progress{Total: 2, Completed: 1, Pending: 1, InProgress: 1}) {
		t.Errorf("progress = %+v", st.Progress)
	}
	first, second := st.Instances[0], st.Instances[1]
	if !first.StartedAt.Equal(time.Date(2026, 11, 24, 0, 41, 40, 123456000, time.UTC)) ||
		first.StartedAt.Location() != time.UTC {
		t.Errorf("started_at = %v", first.StartedAt)
	}
	if first.CompletedAt != nil || first.PreviousVersion != "v1.2.2" || first.Batch != 1 {
		t.Errorf("first instance = %+v", first)
	}
	if !second.StartedAt.IsZero() || second.CompletedAt != nil || second.Status != StatusPending {
		t.Errorf("a null started_at must leave a zero time: %+v", second)
	}
}

func TestIDsArePathEscaped(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 404, `{"error": "not_found", "message": "unknown"}`)
	})
	c := srv.client()
	for id, want := range map[string]string{
		"a/b c": "/v1/deployments/a%2Fb%20c",
		"x?y#z": "/v1/deployments/x%3Fy%23z",
		"..":    "/v1/deployments/%2E%2E",
		".":     "/v1/deployments/%2E",
		"ü":     "/v1/deployments/%C3%BC",
	} {
		if _, err := c.GetDeploymentStatus(id); !IsNotFound(err) {
			t.Errorf("%q: %v", id, err)
		}
		reqs := srv.all()
		if got := reqs[len(reqs)-1].RawPath; !strings.EqualFold(got, want) {
			t.Errorf("GetDeploymentStatus(%q) sent %q, want %q", id, got, want)
		}
	}
	_, _ = c.CancelDeployment("a/b")
	_, _ = c.GetServiceInstanceVersions("svc/x")
	_, _ = c.GetServiceInstances(&InstanceQueryParams{ServiceName: "svc x"})
	reqs := srv.all()
	got := []string{reqs[len(reqs)-3].RawPath, reqs[len(reqs)-2].RawPath, reqs[len(reqs)-1].RawPath}
	want := []string{"/v1/deployments/a%2Fb/cancel", "/v1/services/svc%2Fx/versions",
		"/v1/services/svc%20x/instances"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths = %v, want %v", got, want)
	}
}

func TestCancelDeployment(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		switch r.URL.Path {
		case "/v1/deployments/done/cancel":
			writeJSON(w, 200, `{"deploy_id": "done", "status": "cancelled",
				"cancelled_at": "2026-11-24T00:41:45.000000Z"}`)
		case "/v1/deployments/slow/cancel":
			writeJSON(w, 202, `{"deploy_id": "slow", "status": "in_progress", "cancelled_at": null}`)
		case "/v1/deployments/finished/cancel":
			writeJSON(w, 409, `{"error": "conflict", "message": "run finished already finished (completed); nothing to cancel"}`)
		}
	})
	c := srv.client()
	res, err := c.CancelDeployment("done")
	if err != nil || res.Status != StatusCancelled ||
		!res.CancelledAt.Equal(time.Date(2026, 11, 24, 0, 41, 45, 0, time.UTC)) {
		t.Errorf("200: %+v, %v", res, err)
	}
	req := srv.all()[0]
	if req.Method != "POST" || len(req.Body) != 0 || req.Header.Get("Authorization") != "Bearer "+testToken {
		t.Errorf("request = %+v", req)
	}
	res, err = c.CancelDeployment("slow")
	if err != nil {
		t.Fatalf("202 must not be an error: %v", err)
	}
	if res.Status != StatusInProgress || !res.CancelledAt.IsZero() {
		t.Errorf("202: %+v", res)
	}
	if _, err = c.CancelDeployment("finished"); !IsConflict(err) {
		t.Errorf("409: %v", err)
	}
}

func TestCancelWaitsWithWaitForRuns(t *testing.T) {
	var mu sync.Mutex
	polls := 0
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.URL.Path == "/v1/deployments/slow/cancel" {
			writeJSON(w, 202, `{"deploy_id": "slow", "status": "in_progress", "cancelled_at": null}`)
			return
		}
		mu.Lock()
		polls++
		n := polls
		mu.Unlock()
		if n < 3 {
			writeJSON(w, 200, statusJSON("slow", StatusInProgress, false))
		} else {
			writeJSON(w, 200, statusJSON("slow", StatusCancelled, true))
		}
	})
	res, err := srv.client(WaitForRuns(), WithPollInterval(5*time.Millisecond)).CancelDeployment("slow")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusCancelled || !res.CancelledAt.Equal(time.Date(2026, 11, 24, 0, 41, 49, 654321000, time.UTC)) {
		t.Errorf("result = %+v", res)
	}
	if polls != 3 {
		t.Errorf("%d status polls, want 3", polls)
	}
}

func TestVersionsAndInstancesQueries(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if strings.HasSuffix(r.URL.Path, "/versions") {
			writeJSON(w, 200, `{"service": "user-service",
				"instances": [{"instance_id": "instance-1", "version": "v1.2.3",
				               "last_updated": "2026-11-24T00:41:40.123456Z"},
				              {"instance_id": "instance-2", "version": "", "last_updated": null}],
				"version_summary": {"v1.2.3": 1, "": 1}, "total_instances": 2,
				"updated_at": "2026-11-24T00:41:41.000000Z"}`)
			return
		}
		writeJSON(w, 200, `{"service": "user-service",
			"instances": [{"instance_id": "instance-1", "host": "10.0.0.5", "port": 8080,
			               "version": "v1.2.3", "last_heartbeat": null,
			               "metadata": {"zone": "a"}}],
			"total": 7, "limit": 1, "offset": 2}`)
	})
	c := srv.client()
	versions, err := c.GetServiceInstanceVersions("user-service")
	if err != nil {
		t.Fatal(err)
	}
	if versions.TotalInstances != 2 || versions.VersionSummary["v1.2.3"] != 1 ||
		versions.Instances[0].LastUpdated.IsZero() || !versions.Instances[1].LastUpdated.IsZero() {
		t.Errorf("versions = %+v", versions)
	}
	page, err := c.GetServiceInstances(&InstanceQueryParams{ServiceName: "user-service",
		Version: "v1.2.3", Limit: 1, Offset: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := &ServiceInstances{Service: "user-service", Total: 7, Limit: 1, Offset: 2,
		Instances: []InstanceInfo{{InstanceID: "instance-1", Host: "10.0.0.5", Port: 8080,
			Version: "v1.2.3", Metadata: map[string]string{"zone": "a"}}}}
	if !reflect.DeepEqual(page, want) {
		t.Errorf("page = %+v\nwant %+v", page, want)
	}
	if _, err := c.GetServiceInstances(&InstanceQueryParams{ServiceName: "user-service"}); err != nil {
		t.Fatal(err)
	}
	reqs := srv.all()
	if reqs[0].Method != "GET" || reqs[0].Path != "/v1/services/user-service/versions" {
		t.Errorf("versions request = %s %s", reqs[0].Method, reqs[0].Path)
	}
	wantQuery := map[string][]string{"version": {"v1.2.3"}, "limit": {"1"}, "offset": {"2"}}
	if reqs[1].Path != "/v1/services/user-service/instances" || !reflect.DeepEqual(reqs[1].Query, wantQuery) {
		t.Errorf("instances request = %s ? %v", reqs[1].Path, reqs[1].Query)
	}
	if len(reqs[2].Query) != 0 {
		t.Errorf("zero Version/Limit/Offset must be left out: %v", reqs[2].Query)
	}
}

func TestRollbackRequests(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.URL.Path == "/v1/rollbacks/instance" {
			writeJSON(w, 202, `{"rollback_id": "rb-1", "instance_id": "instance-1",
				"target_version": "v1.2.2", "status": "pending",
				"started_at": "2026-11-24T00:41:40.000000Z"}`)
			return
		}
		writeJSON(w, 202, `{"rollback_id": "rb-2", "service": "user-service",
			"target_version": "v1.2.2", "status": "pending",
			"instances": ["instance-1", "instance-2"], "total_instances": 2,
			"started_at": "2026-11-24T00:41:40.000000Z"}`)
	})
	c := srv.client()
	one, err := c.RollbackInstance(&InstanceRollbackParams{InstanceID: "instance-1",
		TargetVersion: "v1.2.2", Force: true})
	if err != nil || one.RollbackID != "rb-1" || one.Status != StatusPending {
		t.Fatalf("RollbackInstance = %+v, %v", one, err)
	}
	batch, err := c.RollbackBatch(&BatchRollbackParams{Service: "user-service",
		TargetVersion: "v1.2.2", PackageURL: "https://p/v1.2.2.tar.gz",
		Instances: []string{"instance-1", "instance-2"}, Timeout: 120, BatchSize: "50%",
		RollbackID: "rb-2"})
	if err != nil || batch.RollbackID != "rb-2" || batch.TotalInstances != 2 ||
		!reflect.DeepEqual(batch.Instances, []string{"instance-1", "instance-2"}) {
		t.Fatalf("RollbackBatch = %+v, %v", batch, err)
	}
	reqs := srv.all()
	if len(reqs) != 2 || reqs[0].Method != "POST" || reqs[1].Method != "POST" ||
		reqs[1].Path != "/v1/rollbacks/batch" {
		t.Fatalf("requests = %+v", reqs)
	}
	wantOne := map[string]any{"instance_id": "instance-1", "target_version": "v1.2.2",
		"package_url": "", "force": true}
	if got := bodyKeys(t, reqs[0].Body); !reflect.DeepEqual(got, wantOne) {
		t.Errorf("instance rollback body = %v\nwant %v (timeout 0 left out)", got, wantOne)
	}
	wantBatch := map[string]any{"service": "user-service", "target_version": "v1.2.2",
		"package_url": "https://p/v1.2.2.tar.gz", "instances": []any{"instance-1", "instance-2"},
		"force": false, "timeout": 120.0, "batch_size": "50%", "rollback_id": "rb-2"}
	if got := bodyKeys(t, reqs[1].Body); !reflect.DeepEqual(got, wantBatch) {
		t.Errorf("batch rollback body = %v\nwant %v", got, wantBatch)
	}
}

func TestLocalValidationSendsNothing(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
	})
	c := srv.client(WaitForRuns())
	ctx := context.Background()
	checks := []struct {
		field string
		call  func() error
	}{
		{"params", func() error { _, err := c.ExecuteDeployment(nil); return err }},
		{"deploy_id", func() error { _, err := c.GetDeploymentStatus(""); return err }},
		{"deploy_id", func() error { _, err := c.CancelDeployment(""); return err }},
		{"service", func() error { _, err := c.GetServiceInstanceVersions(""); return err }},
		{"params", func() error { _, err := c.GetServiceInstances(nil); return err }},
		{"service_name", func() error { _, err := c.GetServiceInstances(&InstanceQueryParams{}); return err }},
		{"params", func() error { _, err := c.RollbackInstance(nil); return err }},
		{"params", func() error { _, err := c.RollbackBatch(nil); return err }},
		{"deploy_id", func() error { _, err := c.Wait(ctx, ""); return err }},
	}
	for i, check := range checks {
		err := check.call()
		var apiErr *APIError
		if !IsValidation(err) || !errors.As(err, &apiErr) || apiErr.Field != check.field ||
			apiErr.StatusCode != 0 {
			t.Errorf("check %d: %v (%+v), want a local validation error on %s", i, err, apiErr, check.field)
		}
	}
}

// --- Errors ---------------------------------------------------------------------------

func TestErrorDecoding(t *testing.T) {
	answers := map[string]struct {
		status int
		body   string
	}{
		"validation": {422, `{"error": "validation", "message": "invalid instances[2]: must be a name", "field": "instances[2]"}`},
		"notfound":   {404, `{"error": "not_found", "message": "deployment nope not found", "kind": "deployment", "key": "nope"}`},
		"conflict":   {409, `{"error": "conflict", "message": "instance-1 is busy"}`},
		"auth":       {401, `{"error": "unauthenticated", "message": "missing or unknown token"}`},
		"html":       {502, "<html>Bad Gateway</html>\n"},
		"empty":      {503, ""},
		"long":       {500, strings.Repeat("é", 1000)},
	}
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		a := answers[strings.TrimPrefix(r.URL.Path, "/v1/deployments/")]
		if strings.HasPrefix(a.body, "{") {
			writeJSON(w, a.status, a.body)
		} else {
			w.WriteHeader(a.status)
			_, _ = io.WriteString(w, a.body)
		}
	})
	c := srv.client()
	get := func(id string) *APIError {
		t.Helper()
		_, err := c.GetDeploymentStatus(id)
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("%s: %v (%T) is not an *APIError", id, err, err)
		}
		return apiErr
	}
	v := get("validation")
	if *v != (APIError{StatusCode: 422, Code: "validation", Message: "invalid instances[2]: must be a name",
		Field: "instances[2]"}) {
		t.Errorf("validation: %+v", v)
	}
	if v.Error() != "floy: HTTP 422 validation: invalid instances[2]: must be a name" {
		t.Errorf("Error() = %q", v.Error())
	}
	if !IsValidation(v) || IsNotFound(v) || IsConflict(v) {
		t.Error("IsValidation/IsNotFound/IsConflict disagree on a 422")
	}
	nf := get("notfound")
	if !IsNotFound(nf) || nf.Code != CodeNotFound || nf.Message != "deployment nope not found" {
		t.Errorf("not found: %+v", nf)
	}
	wrapped := fmt.Errorf("deploying: %w", nf)
	if !IsNotFound(wrapped) || IsConflict(wrapped) {
		t.Error("the helpers must see through wrapping")
	}
	if cf := get("conflict"); !IsConflict(cf) || IsValidation(cf) {
		t.Errorf("conflict: %+v", cf)
	}
	if a := get("auth"); a.StatusCode != 401 || a.Code != CodeUnauthenticated {
		t.Errorf("auth: %+v", a)
	}
	if h := get("html"); h.StatusCode != 502 || h.Code != "" || h.Message != "<html>Bad Gateway</html>" ||
		h.Error() != "floy: HTTP 502: <html>Bad Gateway</html>" {
		t.Errorf("html: %+v %q", h, h.Error())
	}
	if e := get("empty"); e.Message != "Service Unavailable" {
		t.Errorf("empty: %+v", e)
	}
	if l := get("long"); len(l.Message) > maxErrorText+3 || !strings.HasSuffix(l.Message, "...") ||
		!strings.HasPrefix(l.Message, "éé") {
		t.Errorf("long body kept as %d bytes: %.40q", len(l.Message), l.Message)
	}
	if IsNotFound(nil) || IsConflict(errors.New("409")) || IsValidation(io.EOF) {
		t.Error("non-API errors must not match")
	}
}

func TestBadSuccessAnswerIsAnError(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, `{"deploy_id": 12}`)
	})
	_, err := srv.client().GetDeploymentStatus("x")
	if err == nil || !strings.Contains(err.Error(), "decoding") {
		t.Errorf("err = %v", err)
	}
}

// --- WaitForRuns ----------------------------------------------------------------------

// runServer starts runs and answers their status: pending, then in_progress, then the
// final status after `steps` status requests.
type runServer struct {
	*fakeServer
	mu    sync.Mutex
	polls map[string]int
	times map[string][]time.Time
}

func newRunServer(t *testing.T, steps int, final string) *runServer {
	rs := &runServer{polls: map[string]int{}, times: map[string][]time.Time{}}
	rs.fakeServer = newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/deployments":
			writeJSON(w, 202, `{"deploy_id": "deploy-12345", "service": "user-service",
				"version": "v1.2.3", "status": "pending", "total_instances": 2,
				"started_at": "2026-11-24T00:41:40.000000Z"}`)
		case r.Method == "POST" && r.URL.Path == "/v1/rollbacks/instance":
			writeJSON(w, 202, `{"rollback_id": "rb-one", "instance_id": "instance-1",
				"target_version": "v1.2.2", "status": "pending",
				"started_at": "2026-11-24T00:41:40.000000Z"}`)
		case r.Method == "POST" && r.URL.Path == "/v1/rollbacks/batch":
			writeJSON(w, 202, `{"rollback_id": "rb-batch", "service": "user-service",
				"target_version": "v1.2.2", "status": "pending",
				"instances": ["instance-1", "instance-2"], "total_instances": 2,
				"started_at": "2026-11-24T00:41:40.000000Z"}`)
		case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/deployments/"):
			id := strings.TrimPrefix(r.URL.Path, "/v1/deployments/")
			rs.mu.Lock()
			rs.polls[id]++
			n := rs.polls[id]
			rs.times[id] = append(rs.times[id], time.Now())
			rs.mu.Unlock()
			switch {
			case n == 1:
				writeJSON(w, 200, statusJSON(id, StatusPending, false))
			case n < steps:
				writeJSON(w, 200, statusJSON(id, StatusInProgress, false))
			default:
				writeJSON(w, 200, statusJSON(id, final, true))
			}
		default:
			writeJSON(w, 404, `{"error": "not_found", "message": "no route"}`)
		}
	})
	return rs
}

func TestWaitForRunsPollsUntilTheRunHasEnded(t *testing.T) {
	rs := newRunServer(t, 4, StatusCompleted)
	c := rs.client(WaitForRuns(), WithPollInterval(5*time.Millisecond))
	result, err := c.ExecuteDeployment(&DeployParams{Service: "user-service", Version: "v1.2.3",
		Instances: []string{"instance-1", "instance-2"}, PackageURL: "https://p/v.tgz",
		DeployID: "deploy-12345"})
	if err != nil {
		t.Fatal(err)
	}
	if result.Status != StatusCompleted || result.DeployID != "deploy-12345" {
		t.Errorf("result = %+v, want the final status", result)
	}
	if rs.polls["deploy-12345"] != 4 {
		t.Errorf("%d polls, want 4", rs.polls["deploy-12345"])
	}
	for _, req := range rs.all()[1:] {
		if req.Method != "GET" || req.Path != "/v1/deployments/deploy-12345" ||
			req.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("poll = %s %s", req.Method, req.Path)
		}
	}
}

func TestWaitForRunsDefaultIntervalIsHalfASecond(t *testing.T) {
	rs := newRunServer(t, 3, StatusCompleted)
	c := rs.client(WaitForRuns())
	start := time.Now()
	if _, err := c.RollbackInstance(&InstanceRollbackParams{InstanceID: "instance-1",
		TargetVersion: "v1.2.2"}); err != nil {
		t.Fatal(err)
	}
	times := rs.times["rb-one"]
	if len(times) != 3 {
		t.Fatalf("%d polls, want 3", len(times))
	}
	shortest := time.Hour
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		if gap < 450*time.Millisecond {
			t.Errorf("poll %d came %v after the one before, want 0.5 s", i, gap)
		}
		if gap < shortest {
			shortest = gap
		}
	}
	if shortest > 900*time.Millisecond {
		t.Errorf("polls came at least %v apart, want about 0.5 s", shortest)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("the wait took %v", elapsed)
	}
}

func TestWaitForRunsOnRollbacks(t *testing.T) {
	rs := newRunServer(t, 2, StatusFailed)
	c := rs.client(WaitForRuns(), WithPollInterval(time.Millisecond))
	one, err := c.RollbackInstance(&InstanceRollbackParams{InstanceID: "instance-1", TargetVersion: "v1.2.2"})
	if err != nil || one.Status != StatusFailed {
		t.Errorf("RollbackInstance = %+v, %v; a failed run is a status, not an error", one, err)
	}
	batch, err := c.RollbackBatch(&BatchRollbackParams{Service: "user-service", TargetVersion: "v1.2.2",
		Instances: []string{"instance-1", "instance-2"}})
	if err != nil || batch.Status != StatusFailed || batch.RollbackID != "rb-batch" {
		t.Errorf("RollbackBatch = %+v, %v", batch, err)
	}
	if rs.polls["rb-one"] != 2 || rs.polls["rb-batch"] != 2 {
		t.Errorf("polls = %v", rs.polls)
	}
}

func TestWithoutWaitForRunsNothingIsPolled(t *testing.T) {
	rs := newRunServer(t, 2, StatusCompleted)
	c := rs.client()
	if _, err := c.RollbackBatch(&BatchRollbackParams{Service: "user-service", TargetVersion: "v1.2.2",
		Instances: []string{"instance-1"}}); err != nil {
		t.Fatal(err)
	}
	if n := len(rs.all()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestWaitNeedsFinishedAtWhenTheServerSendsIt(t *testing.T) {
	var mu sync.Mutex
	polls := 0
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		mu.Lock()
		polls++
		n := polls
		mu.Unlock()
		switch {
		case r.URL.Path == "/v1/deployments/floy" && n < 3:
			// terminal status, but the run is still closing: finished_at is null
			writeJSON(w, 200, statusJSON("floy", StatusFailed, false))
		case r.URL.Path == "/v1/deployments/floy":
			writeJSON(w, 200, statusJSON("floy", StatusFailed, true))
		default:
			// another implementation of the spec: no finished_at key at all
			writeJSON(w, 200, `{"deploy_id": "plain", "service": "s", "version": "1",
				"status": "completed", "progress": {"total": 0, "completed": 0, "failed": 0,
				"pending": 0}, "instances": [], "started_at": "2026-11-24T00:41:40Z",
				"updated_at": "2026-11-24T00:41:40Z"}`)
		}
	})
	c := srv.client(WithPollInterval(time.Millisecond))
	st, err := c.Wait(context.Background(), "floy")
	if err != nil || st.FinishedAt == nil || polls != 3 {
		t.Errorf("floy run: %+v, %v after %d polls", st, err, polls)
	}
	polls = 0
	st, err = c.Wait(context.Background(), "plain")
	if err != nil || st.Status != StatusCompleted || polls != 1 {
		t.Errorf("plain run: %+v, %v after %d polls", st, err, polls)
	}
}

func TestWaitRetriesTransientErrorsOnly(t *testing.T) {
	var mu sync.Mutex
	polls := map[string]int{}
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		id := strings.TrimPrefix(r.URL.Path, "/v1/deployments/")
		mu.Lock()
		polls[id]++
		n := polls[id]
		mu.Unlock()
		switch {
		case id == "flaky" && n <= 2:
			writeJSON(w, 503, `{"error": "config", "message": "database unreachable"}`)
		case id == "flaky":
			writeJSON(w, 200, statusJSON(id, StatusCompleted, true))
		case id == "down":
			writeJSON(w, 502, "bad gateway")
		default:
			writeJSON(w, 403, `{"error": "forbidden", "message": "read role needed"}`)
		}
	})
	c := srv.client(WithPollInterval(time.Millisecond))
	if st, err := c.Wait(context.Background(), "flaky"); err != nil || st.Status != StatusCompleted {
		t.Errorf("flaky: %+v, %v", st, err)
	}
	if _, err := c.Wait(context.Background(), "down"); err == nil || polls["down"] != maxTransientPolls {
		t.Errorf("down: %v after %d polls, want an error after %d", err, polls["down"], maxTransientPolls)
	}
	var apiErr *APIError
	if _, err := c.Wait(context.Background(), "denied"); !errors.As(err, &apiErr) || apiErr.StatusCode != 403 ||
		polls["denied"] != 1 {
		t.Errorf("denied: %v after %d polls, want the 403 at once", err, polls["denied"])
	}
}

func TestWaitHonoursTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	polls := 0
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method == "POST" {
			writeJSON(w, 202, `{"deploy_id": "deploy-12345", "service": "user-service",
				"version": "v1.2.3", "status": "pending", "total_instances": 1,
				"started_at": "2026-11-24T00:41:40.000000Z"}`)
			return
		}
		mu.Lock()
		polls++
		if polls == 3 {
			cancel() // the caller gives up while the run goes on
		}
		mu.Unlock()
		writeJSON(w, 200, statusJSON("deploy-12345", StatusInProgress, false))
	})
	c := srv.client(WaitForRuns(), WithPollInterval(time.Millisecond))
	result, err := c.ExecuteDeploymentContext(ctx, &DeployParams{Service: "user-service",
		Version: "v1.2.3", Instances: []string{"instance-1"}, PackageURL: "https://p/v.tgz",
		DeployID: "deploy-12345"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the context's cancellation", err)
	}
	if result == nil || result.DeployID != "deploy-12345" || result.Status != StatusPending {
		t.Errorf("the started run must come back with the error: %+v", result)
	}
	mu.Lock()
	defer mu.Unlock()
	if polls != 3 {
		t.Errorf("%d polls after the cancellation at the 3rd", polls)
	}
}

// --- The spec's types -----------------------------------------------------------------

// specTags transcribes the Go fields and JSON tags of shared/interface-spec.md, in order.
var specTags = map[string][]string{
	"DeployParams": {"Service service", "Version version", "Instances instances",
		"PackageURL package_url", "DeployID deploy_id", "Timeout timeout", "RetryCount retry_count"},
	"DeployResult": {"DeployID deploy_id", "Service service", "Version version", "Status status",
		"TotalInstances total_instances", "StartedAt started_at"},
	"DeployStatus": {"DeployID deploy_id", "Service service", "Version version", "Status status",
		"Progress progress", "Instances instances", "StartedAt started_at", "UpdatedAt updated_at"},
	"Progress": {"Total total", "Completed completed", "Failed failed", "Pending pending"},
	"InstanceStatus": {"InstanceID instance_id", "CurrentVersion current_version",
		"TargetVersion target_version", "StartedAt started_at", "CompletedAt completed_at",
		"ErrorMessage error_message"},
	"CancelResult": {"DeployID deploy_id", "Status status", "CancelledAt cancelled_at"},
	"ServiceVersions": {"Service service", "Instances instances", "VersionSummary version_summary",
		"TotalInstances total_instances", "UpdatedAt updated_at"},
	"InstanceVersion": {"InstanceID instance_id", "Version version", "LastUpdated last_updated"},
	"InstanceQueryParams": {"ServiceName service_name", "Version version", "Limit limit",
		"Offset offset"},
	"ServiceInstances": {"Service service", "Instances instances", "Total total", "Limit limit",
		"Offset offset"},
	"InstanceInfo": {"InstanceID instance_id", "Host host", "Port port", "Version version",
		"LastHeartbeat last_heartbeat", "Metadata metadata"},
	"InstanceRollbackParams": {"InstanceID instance_id", "TargetVersion target_version",
		"PackageURL package_url", "Force force", "Timeout timeout"},
	"RollbackResult": {"RollbackID rollback_id", "InstanceID instance_id",
		"TargetVersion target_version", "Status status", "StartedAt started_at"},
	"BatchRollbackParams": {"Service service", "TargetVersion target_version",
		"PackageURL package_url", "Instances instances", "Force force", "Timeout timeout"},
	"BatchRollbackResult": {"RollbackID rollback_id", "Service service",
		"TargetVersion target_version", "Status status", "Instances instances",
		"TotalInstances total_instances", "StartedAt started_at"},
}

// extensionTags are floy's optional keys (orchestrator/models/common.py EXTENSION_KEYS
// that this client declares).
var extensionTags = map[string][]string{
	"DeployParams":           {"batch_size", "max_failures", "package_sha256", "auto_rollback"},
	"DeployStatus":           {"kind", "error_message", "rollback_id", "finished_at"},
	"Progress":               {"in_progress", "cancelled"},
	"InstanceStatus":         {"status", "attempts", "phase", "batch", "previous_version"},
	"InstanceRollbackParams": {"rollback_id"},
	"BatchRollbackParams":    {"batch_size", "max_failures", "rollback_id"},
}

var specTypes = map[string]any{
	"DeployParams": DeployParams{}, "DeployResult": DeployResult{}, "DeployStatus": DeployStatus{},
	"Progress": Progress{}, "InstanceStatus": InstanceStatus{}, "CancelResult": CancelResult{},
	"ServiceVersions": ServiceVersions{}, "InstanceVersion": InstanceVersion{},
	"InstanceQueryParams": InstanceQueryParams{}, "ServiceInstances": ServiceInstances{},
	"InstanceInfo": InstanceInfo{}, "InstanceRollbackParams": InstanceRollbackParams{},
	"RollbackResult": RollbackResult{}, "BatchRollbackParams": BatchRollbackParams{},
	"BatchRollbackResult": BatchRollbackResult{},
}

func TestSpecFieldsAndTags(t *testing.T) {
	if len(specTypes) != len(specTags) {
		t.Fatalf("%d types for %d tables", len(specTypes), len(specTags))
	}
	timeType := reflect.TypeOf(time.Time{})
	for name, value := range specTypes {
		typ := reflect.TypeOf(value)
		spec := specTags[name]
		var gotSpec, gotExt []string
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			if i < len(spec) {
				gotSpec = append(gotSpec, f.Name+" "+tag)
				if strings.Contains(tag, ",") {
					t.Errorf("%s.%s: a spec field must have the spec's plain tag, got %q", name, f.Name, tag)
				}
				if f.Type.Kind() == reflect.Ptr && f.Name != "CompletedAt" {
					t.Errorf("%s.%s: a spec field is not a pointer in the spec", name, f.Name)
				}
				continue
			}
			key, opts, _ := strings.Cut(tag, ",")
			if opts != "omitempty" {
				t.Errorf("%s.%s: extension %q must be omitempty", name, f.Name, tag)
			}
			gotExt = append(gotExt, key)
		}
		if !reflect.DeepEqual(gotSpec, spec) {
			t.Errorf("%s fields = %v\nspec: %v", name, gotSpec, spec)
		}
		if want := extensionTags[name]; !reflect.DeepEqual(gotExt, want) && (len(gotExt) > 0 || len(want) > 0) {
			t.Errorf("%s extensions = %v, want %v", name, gotExt, want)
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if strings.HasSuffix(f.Name, "At") || f.Name == "LastUpdated" || f.Name == "LastHeartbeat" {
				if f.Type != timeType && f.Type != reflect.PtrTo(timeType) {
					t.Errorf("%s.%s is %v, want time.Time", name, f.Name, f.Type)
				}
			}
		}
	}
	// The spec's pointer: completed_at, nil until the instance has finished.
	if f, _ := reflect.TypeOf(InstanceStatus{}).FieldByName("CompletedAt"); f.Type != reflect.PtrTo(timeType) {
		t.Errorf("CompletedAt is %v, want *time.Time", f.Type)
	}
	// The spec's nested anonymous structs are named here, with the spec's element types.
	st := reflect.TypeOf(DeployStatus{})
	if f, _ := st.FieldByName("Progress"); f.Type != reflect.TypeOf(Progress{}) {
		t.Errorf("DeployStatus.Progress is %v", f.Type)
	}
	if f, _ := st.FieldByName("Instances"); f.Type != reflect.TypeOf([]InstanceStatus{}) {
		t.Errorf("DeployStatus.Instances is %v", f.Type)
	}
}

func TestZeroValuesMarshalToExactlyTheSpecKeys(t *testing.T) {
	for name, value := range specTypes {
		data, err := json.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, field := range specTags[name] {
			want = append(want, strings.Fields(field)[1])
		}
		sort.Strings(want)
		if got := sortedKeys(m); !reflect.DeepEqual(got, want) {
			t.Errorf("%s marshals to %v, want %v", name, got, want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 24, 0, 41, 40, 123456000, time.UTC)
	done := at.Add(9 * time.Second)
	values := []any{
		&DeployParams{Service: "user-service", Version: "v1.2.3", Instances: []string{"a", "b"},
			PackageURL: "https://p/x.tgz", DeployID: "d", Timeout: 300, RetryCount: 3,
			BatchSize: "50%", MaxFailures: 1, PackageSHA256: "ab", AutoRollback: true},
		&DeployResult{DeployID: "d", Service: "s", Version: "v", Status: StatusPending,
			TotalInstances: 2, StartedAt: at},
		&DeployStatus{DeployID: "d", Service: "s", Version: "v", Status: StatusCompleted,
			Progress: Progress{Total: 2, Completed: 1, Failed: 1, InProgress: 0, Cancelled: 0},
			Instances: []InstanceStatus{{InstanceID: "a", CurrentVersion: "v", TargetVersion: "v",
				StartedAt: at, CompletedAt: &done, Status: StatusCompleted, Attempts: 2, Batch: 1,
				PreviousVersion: "u"}, {InstanceID: "b", TargetVersion: "v", ErrorMessage: "boom"}},
			StartedAt: at, UpdatedAt: done, Kind: "deploy", ErrorMessage: "1 failed",
			RollbackID: "rb", FinishedAt: &done},
		&CancelResult{DeployID: "d", Status: StatusCancelled, CancelledAt: done},
		&ServiceVersions{Service: "s", Instances: []InstanceVersion{{InstanceID: "a", Version: "v",
			LastUpdated: at}}, VersionSummary: map[string]int{"v": 1}, TotalInstances: 1, UpdatedAt: at},
		&InstanceQueryParams{ServiceName: "s", Version: "v", Limit: 10, Offset: 20},
		&ServiceInstances{Service: "s", Instances: []InstanceInfo{{InstanceID: "a", Host: "h",
			Port: 80, Version: "v", LastHeartbeat: at, Metadata: map[string]string{"k": "v"}}},
			Total: 1, Limit: 100},
		&InstanceRollbackParams{InstanceID: "a", TargetVersion: "v", PackageURL: "https://p",
			Force: true, Timeout: 30, RollbackID: "rb"},
		&RollbackResult{RollbackID: "rb", InstanceID: "a", TargetVersion: "v", Status: StatusPending,
			StartedAt: at},
		&BatchRollbackParams{Service: "s", TargetVersion: "v", Instances: []string{"a"}, Force: true,
			Timeout: 60, BatchSize: "1", MaxFailures: 2, RollbackID: "rb"},
		&BatchRollbackResult{RollbackID: "rb", Service: "s", TargetVersion: "v", Status: StatusPending,
			Instances: []string{"a"}, TotalInstances: 1, StartedAt: at},
	}
	for _, v := range values {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := json.Unmarshal(data, back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, v) {
			t.Errorf("%T did not survive a round trip:\n%s\n%+v", v, data, back)
		}
		if strings.Contains(string(data), "+00:00") {
			t.Errorf("%T: times must be RFC 3339 UTC with Z: %s", v, data)
		}
	}
	// The wire form of times: RFC 3339, UTC, "Z".
	data, _ := json.Marshal(&CancelResult{DeployID: "d", Status: StatusCancelled, CancelledAt: at})
	if want := `{"deploy_id":"d","status":"cancelled","cancelled_at":"2026-11-24T00:41:40.123456Z"}`; string(data) != want {
		t.Errorf("CancelResult = %s, want %s", data, want)
	}
	// completed_at is written as null while nil, as the spec's pointer implies.
	data, _ = json.Marshal(InstanceStatus{InstanceID: "a"})
	if !strings.Contains(string(data), `"completed_at":null`) {
		t.Errorf("InstanceStatus = %s", data)
	}
}

func TestStatusWords(t *testing.T) {
	for status, terminal := range map[string]bool{StatusPending: false, StatusInProgress: false,
		StatusCompleted: true, StatusFailed: true, StatusCancelled: true, "": false, "other": false} {
		if IsTerminalStatus(status) != terminal {
			t.Errorf("IsTerminalStatus(%q) != %v", status, terminal)
		}
	}
}
