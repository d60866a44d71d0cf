package control

import _ "embed"

// openAPI documents apiRoutes; served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var openAPI []byte
