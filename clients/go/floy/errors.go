package floy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Error codes of floy's JSON error bodies (docs/http-api.md, "Errors").
const (
	CodeBadRequest       = "bad_request"        // 400: the body is not a JSON object
	CodeUnauthenticated  = "unauthenticated"    // 401: missing, unknown or expired token
	CodeForbidden        = "forbidden"          // 403: the token's role may not do this
	CodeNotFound         = "not_found"          // 404: unknown run, service or instance
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: busy instance, reused ID, finished run
	CodeValidation       = "validation"         // 422: a field is invalid; Field names it
	CodeRateLimited      = "rate_limited"       // 429: too many failed authentications
	CodeConfig           = "config"             // 503: the database is unreachable
	CodeExecution        = "execution"          // 503: a run could not be started
)

// APIError is an answer of the server other than 2xx, decoded from floy's JSON error body
// {"error": Code, "message": Message, "field": Field}. When the body is not that JSON
// object, Code is empty and Message holds the start of the body (or the status text).
//
// The Client also returns an *APIError with StatusCode 0 and Code "validation" for a
// request it refuses before sending it (a nil params pointer, an empty ID or service).
type APIError struct {
	StatusCode int    // HTTP status code; 0 when the request was refused locally
	Code       string // floy's error code ("not_found", "validation", ...)
	Message    string // human-readable message
	Field      string // the invalid field for "validation" (e.g. "instances[2]")
}

// Error renders "floy: HTTP 422 validation: invalid instances[2]: ...".
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if e.StatusCode == 0 {
		return "floy: " + msg
	}
	if e.Code == "" {
		return fmt.Sprintf("floy: HTTP %d: %s", e.StatusCode, msg)
	}
	return fmt.Sprintf("floy: HTTP %d %s: %s", e.StatusCode, e.Code, msg)
}

// IsNotFound reports whether err is (or wraps) an *APIError for an unknown run, service
// or instance (HTTP 404).
func IsNotFound(err error) bool {
	return hasCode(err, http.StatusNotFound, CodeNotFound)
}

// IsConflict reports whether err is (or wraps) an *APIError for a conflict (HTTP 409):
// a busy instance, a run ID reused with other parameters, a cancel of a finished run.
func IsConflict(err error) bool {
	return hasCode(err, http.StatusConflict, CodeConflict)
}

// IsValidation reports whether err is (or wraps) an *APIError for an invalid request
// (HTTP 422, or refused by the Client before sending); its Field names the field.
func IsValidation(err error) bool {
	return hasCode(err, http.StatusUnprocessableEntity, CodeValidation)
}

func hasCode(err error, status int, code string) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.StatusCode == status || apiErr.Code == code
}

// invalid is the *APIError for a request refused before sending it.
func invalid(field, message string) *APIError {
	return &APIError{Code: CodeValidation, Field: field,
		Message: fmt.Sprintf("invalid %s: %s", field, message)}
}

// maxErrorText bounds the text kept from an error body that is not floy's JSON.
const maxErrorText = 512

// decodeAPIError builds the *APIError of a non-2xx answer from its status and body.
func decodeAPIError(status int, body []byte) *APIError {
	apiErr := &APIError{StatusCode: status}
	var payload struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Field   string `json:"field"`
	}
	if err := json.Unmarshal(body, &payload); err == nil && (payload.Error != "" || payload.Message != "") {
		apiErr.Code = payload.Error
		apiErr.Message = payload.Message
		apiErr.Field = payload.Field
		return apiErr
	}
	text := strings.TrimSpace(string(body))
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
		for !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
		text += "..."
	}
	if text == "" {
		text = http.StatusText(status)
	}
	apiErr.Message = text
	return apiErr
}
