// Prototype only (not project code): how much CPU a fasthttp-based Host
// router costs per request, for the issue 11 architecture decision. It
// takes `campus proxy`'s flags so that `campus bench --compare --baseline`
// runs it beside the real proxy, nginx and HAProxy; it routes each host of
// the embedded registry's snapshot (read once) to its first healthy
// instance.
package main

import (
	"context"
	"flag"
	"log"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/campus-saas/campus/registry/embedded"
)

func main() {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "", "")
	data := fs.String("data", "", "")
	fs.String("registry", "", "")
	fs.String("admin-listen", "", "")
	fs.String("log-level", "", "")
	fs.String("log-format", "", "")
	fs.Parse(flagArgs())
	reg, err := embedded.Open(*data)
	if err != nil {
		log.Fatal(err)
	}
	snap, err := reg.Snapshot(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	type route struct {
		hc     *fasthttp.HostClient
		tenant string
	}
	routes := map[string]route{}
	for _, t := range snap.Tenants {
		for _, in := range snap.Instances {
			if in.Tenant == t.Name && in.Healthy {
				for _, h := range t.Hosts {
					routes[h] = route{&fasthttp.HostClient{Addr: in.Addr, MaxConns: 512}, t.Name}
				}
				break
			}
		}
	}
	h := func(ctx *fasthttp.RequestCtx) {
		rt, ok := routes[string(ctx.Host())]
		if !ok {
			ctx.Error("unknown school", 404)
			return
		}
		req := &ctx.Request
		req.Header.Del("X-Forwarded-For")
		req.Header.Set("X-Forwarded-For", ctx.RemoteIP().String())
		req.Header.Set("X-Campus-Tenant", rt.tenant)
		if err := rt.hc.Do(req, &ctx.Response); err != nil {
			ctx.Error("bad gateway", 502)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal((&fasthttp.Server{Handler: h}).Serve(ln))
}
