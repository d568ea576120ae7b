package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// bodyHeadroom is added to the payload limit to get the request body limit,
// so a payload of the maximum size still fits with the other fields around
// it. The engine checks the payload itself against the exact limit.
const bodyHeadroom = 64 << 10

// decodeJSON reads the request body into dst strictly: the body must be valid
// UTF-8 JSON, one value, with no field dst does not declare. An empty body
// counts as {}. Every failure is an *Error naming the field when there is
// one; nothing has been changed when it returns an error.
func decodeJSON(c *gin.Context, limit int64, dst any) error {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return newError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "",
				"request body exceeds %d bytes: send a smaller payload", limit)
		}
		return newError(http.StatusBadRequest, CodeInvalidJSON, "", "could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	if !utf8.Valid(raw) {
		return newError(http.StatusBadRequest, CodeInvalidJSON, "", "request body is not valid UTF-8: encode the JSON body as UTF-8")
	}

	// encoding/json matches keys without regard to case, so "ErrorMessage"
	// would fill errorMessage. Keys must match exactly, so check them first.
	if err := checkExactKeys(raw, reflect.TypeOf(dst), ""); err != nil {
		return err
	}

	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return newError(http.StatusBadRequest, CodeInvalidJSON, "", "request body has data after the JSON object: send exactly one object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(http.StatusBadRequest, CodeInvalidJSON, "", "request body has data after the JSON object: send exactly one object")
	}
	return nil
}

// decodeError turns an encoding/json error into a 400 response.
func decodeError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return newError(http.StatusBadRequest, CodeInvalidJSON, "", "request body must be a JSON object, not %s", typeErr.Value)
		}
		return fieldError(typeErr.Field, "%s must be %s, not %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return newError(http.StatusBadRequest, CodeInvalidJSON, "", "request body is not valid JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, CodeInvalidJSON, "", "request body is truncated JSON: send a complete object")
	}
	// encoding/json reports unknown fields only as text: json: unknown field "name".
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		field := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return newError(http.StatusBadRequest, CodeUnknownField, field, "unknown field %q: remove it; see GET /api/openapi.yaml for the fields of this endpoint", field)
	}
	return newError(http.StatusBadRequest, CodeInvalidJSON, "", "request body is not valid JSON: %v", err)
}

// jsonTypeName names a Go kind as the JSON type a client must send.
func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "a " + kind
}

// checkExactKeys walks raw along the Go type t and reports the first object
// key that is not exactly the JSON name of a field. Values that are not
// objects, and fields that hold raw JSON or maps, are left to the decoder.
func checkExactKeys(raw []byte, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(json.RawMessage(nil)) {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	for key, value := range obj {
		field := key
		if path != "" {
			field = path + "." + key
		}
		ft, ok := fields[key]
		if !ok {
			return newError(http.StatusBadRequest, CodeUnknownField, field,
				"unknown field %q: remove it or fix its spelling (names are case-sensitive); see GET /api/openapi.yaml for the fields of this endpoint", field)
		}
		if err := checkExactKeys(value, ft, field); err != nil {
			return err
		}
	}
	return nil
}

// collectFields maps the JSON names of t's fields, including those promoted
// from embedded structs, to their types.
func collectFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}
