package api

import (
	"encoding/json"
	"net/http"

	"github.com/orderflow/orderflow/ingest/domain"
)

// ProblemBase prefixes every problem type URI. The fragment names the class;
// openapi.json lists them (components.schemas.Problem).
const ProblemBase = "https://orderflow.dev/problems/"

// Problem types (RFC 9457). Each class of bad input has its own type so
// clients can branch on it; field-level reasons are in Problem.Errors.
const (
	TypeMalformedJSON      = ProblemBase + "malformed-json"          // 400: body is not JSON
	TypeValidation         = ProblemBase + "validation-error"        // 422: missing/unknown fields, wrong types, out-of-range values
	TypeUnknownReference   = ProblemBase + "unknown-reference"       // 422: body names a customer/product/campaign that does not exist
	TypeCampaignNotActive  = ProblemBase + "campaign-not-active"     // 422: campaign window does not contain now
	TypeIdempotencyMisuse  = ProblemBase + "idempotency-key-reused"  // 422: same Idempotency-Key, different request
	TypeInvalidIdemKey     = ProblemBase + "invalid-idempotency-key" // 400: empty or too long key
	TypeIllegalTransition  = ProblemBase + "illegal-transition"      // 409: e.g. ship a cancelled order
	TypeConflict           = ProblemBase + "conflict"                // 409: unique value already taken
	TypeNotFound           = ProblemBase + "not-found"               // 404: no such resource or route
	TypeMethodNotAllowed   = ProblemBase + "method-not-allowed"      // 405
	TypeUnauthorized       = ProblemBase + "unauthorized"            // 401: missing or wrong bearer token
	TypeBodyTooLarge       = ProblemBase + "body-too-large"          // 413
	TypeUnsupportedMedia   = ProblemBase + "unsupported-media-type"  // 415: body is not application/json
	TypeServiceUnavailable = ProblemBase + "service-unavailable"     // 503: database unreachable
	TypeInternal           = ProblemBase + "internal-error"          // 500
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail,omitempty"`
	Instance string              `json:"instance,omitempty"`
	Errors   []domain.FieldError `json:"errors,omitempty"`
	// Status of the order for illegal transitions.
	CurrentStatus string `json:"current_status,omitempty"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

var titles = map[string]string{
	TypeMalformedJSON:      "Malformed JSON",
	TypeValidation:         "Invalid request",
	TypeUnknownReference:   "Unknown reference",
	TypeCampaignNotActive:  "Campaign not active",
	TypeIdempotencyMisuse:  "Idempotency key reused with a different request",
	TypeInvalidIdemKey:     "Invalid Idempotency-Key",
	TypeIllegalTransition:  "Illegal status transition",
	TypeConflict:           "Conflict",
	TypeNotFound:           "Not found",
	TypeMethodNotAllowed:   "Method not allowed",
	TypeUnauthorized:       "Unauthorized",
	TypeBodyTooLarge:       "Request body too large",
	TypeUnsupportedMedia:   "Unsupported media type",
	TypeServiceUnavailable: "Service unavailable",
	TypeInternal:           "Internal server error",
}

func problem(status int, typ, detail string, errs ...domain.FieldError) *Problem {
	return &Problem{Type: typ, Title: titles[typ], Status: status, Detail: detail, Errors: errs}
}

func validation(errs domain.Errors) *Problem {
	return problem(http.StatusUnprocessableEntity, TypeValidation, errs.Error(), errs...)
}

func fieldErr(ptr, reason, detail string) domain.FieldError {
	return domain.FieldError{Pointer: ptr, Reason: reason, Detail: detail}
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}
