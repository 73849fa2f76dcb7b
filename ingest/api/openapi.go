package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is openapi.yaml converted once to JSON.
var openAPIJSON = func() []byte {
	b, err := OpenAPIDocument()
	if err != nil {
		panic(err)
	}
	return b
}()

// OpenAPIDocument returns the API's OpenAPI 3.1 document as JSON.
func OpenAPIDocument() ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openapi.json: %w", err)
	}
	return append(b, '\n'), nil
}

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIJSON)
}
