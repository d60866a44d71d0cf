package control

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// RouteCount is the number of API routes.
func RouteCount() int { return len(apiRoutes) }

// Routes are the API routes as "METHOD /path".
func Routes() map[string]bool {
	out := map[string]bool{}
	for _, r := range apiRoutes {
		out[r.method+" "+r.path] = true
	}
	return out
}

// OpenAPIOperations are openapi.yaml's operations as "METHOD /path".
func OpenAPIOperations() map[string]bool {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		panic(err)
	}
	out := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			out[strings.ToUpper(method)+" "+path] = true
		}
	}
	return out
}
