package main

import "github.com/campus-saas/campus/registry"

// tenantLink is the URL of path on a tenant's primary host, for links
// printed to people (resetlink). It knows neither the proxy's port nor its
// scheme: when the public-URL setting (publicURL.tenantURL, branch
// admin-data) is merged, replace its one use by m.public.tenantURL and
// delete this file.
func tenantLink(t registry.Tenant, path string) string {
	return "http://" + t.PrimaryHost + path
}
