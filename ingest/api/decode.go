package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/orderflow/orderflow/ingest/domain"
)

// decodeStrict decodes one JSON value from b into v, refusing unknown
// fields and trailing data. prefix is the JSON Pointer of b inside the
// request body ("" for the whole body). Syntax errors are 400
// malformed-json; type mismatches and unknown fields are 422 with a
// field-level reason.
func decodeStrict(b []byte, v any, prefix string) *Problem {
	if len(bytes.TrimSpace(b)) == 0 {
		return problem(400, TypeMalformedJSON, "request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			return problem(400, TypeMalformedJSON, "unexpected data after the JSON value")
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return problem(400, TypeMalformedJSON, fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(400, TypeMalformedJSON, "invalid JSON: unexpected end of input")
	case errors.As(err, &typ):
		ptr := prefix
		if typ.Field != "" {
			ptr += "/" + strings.ReplaceAll(typ.Field, ".", "/")
		}
		want := typ.Type.Kind().String()
		if typ.Type.Kind().String() == "struct" {
			want = "object"
		} else if strings.HasPrefix(typ.Type.String(), "[]") {
			want = "array"
		} else if strings.HasPrefix(want, "int") {
			want = "integer"
		}
		return validation(domain.Errors{fieldErr(ptr, domain.ReasonType, fmt.Sprintf("must be %s, not %s", article(want), typ.Value))})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return validation(domain.Errors{fieldErr(prefix+"/"+name, domain.ReasonUnknownField, fmt.Sprintf("unknown field %q", name))})
	default:
		return problem(400, TypeMalformedJSON, "invalid JSON: "+err.Error())
	}
}

func article(kind string) string {
	switch kind {
	case "integer", "object", "array":
		return "an " + kind
	}
	return "a " + kind
}

// raw is a JSON member decoded later, when its pointer is known.
type raw = json.RawMessage

func present(r raw) bool { return len(r) > 0 && string(r) != "null" }

func parseMoney(errs *domain.Errors, ptr string, r raw) domain.Money {
	var m domain.Money
	if !present(r) {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonRequired, "is required"))
		return 0
	}
	if err := m.UnmarshalJSON(r); err != nil {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonType, "must be a decimal amount with at most 2 decimals, e.g. \"19.99\""))
	}
	return m
}

func parsePercent(errs *domain.Errors, ptr string, r raw) domain.Percent {
	var p domain.Percent
	if !present(r) {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonRequired, "is required"))
		return 0
	}
	if err := p.UnmarshalJSON(r); err != nil {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonType, "must be a percentage with at most 2 decimals, e.g. \"12.5\""))
	}
	return p
}

func parseTime(errs *domain.Errors, ptr string, r raw) time.Time {
	if !present(r) {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonRequired, "is required"))
		return time.Time{}
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonType, "must be an RFC 3339 timestamp string"))
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonFormat, "must be an RFC 3339 timestamp, e.g. 2025-01-31T00:00:00Z"))
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func required(errs *domain.Errors, ptr string, isSet bool) {
	if !isSet {
		*errs = append(*errs, fieldErr(ptr, domain.ReasonRequired, "is required"))
	}
}
