package main

import "github.com/campus-saas/campus/registry"

// tenantURL is the one place that makes a URL of a tenant's site for
// people to open (the admin login after createsuperuser, a password reset
// link): the tenant's primary host. It does not know the proxy's port or
// scheme yet; a public-URL setting shared with the proxy belongs here.
func tenantURL(t registry.Tenant, path string) string {
	return "http://" + t.PrimaryHost + path
}
