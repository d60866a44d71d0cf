package main

import (
	"flag"

	"github.com/campus-saas/campus/tenancy"
)

// publicURL is the scheme and port the proxy is reached at (tenancy).
type publicURL = tenancy.PublicURL

// publicURLOptions is the --public-url flag of commands that print links.
type publicURLOptions struct{ raw string }

func (o *publicURLOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.raw, "public-url", "", "scheme and port people reach the proxy at, as a URL (e.g. https://school.example or http://localhost:8000); "+
		"each tenant's links use its own host with them (default: what `campus dev` recorded in the data folder, else http on port 80)")
}

// resolve picks the flag, then what `campus dev` recorded in dataDir,
// then the default. It never creates anything.
func (o *publicURLOptions) resolve(dataDir string) (publicURL, error) {
	if o.raw != "" {
		p, err := tenancy.ParsePublicURL(o.raw)
		if err != nil {
			return publicURL{}, usageErr("--public-url: %v", err)
		}
		return p, nil
	}
	if st, ok := tenancy.ReadDevState(dataDir); ok && st.PublicURL != "" {
		if p, err := tenancy.ParsePublicURL(st.PublicURL); err == nil {
			return p, nil
		}
	}
	return tenancy.DefaultPublicURL, nil
}
