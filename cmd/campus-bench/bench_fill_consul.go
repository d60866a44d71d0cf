package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

// catalogFill registers the bench's background instances the way a big
// deployment holds them: spread over many machines, not as thousands of
// HTTP checks on one agent. Each goes into the catalog on one of n external
// nodes ("campus-fill-<k>", as consul-esm registers what it checks), as
// tenant's own service (consul.Registry.ServiceName) with a passing check
// of its own. The measured instances stay agent-registered with their
// /readyz check, as the supervisor and `campus app` register them.
type catalogFill struct {
	reg   *consul.Registry
	nodes int
}

func (f catalogFill) node(i int) string { return fmt.Sprintf("campus-fill-%d", i%f.nodes) }

// register puts in on node i mod n, passing.
func (f catalogFill) register(ctx context.Context, i int, in registry.Instance) error {
	host, portStr, err := net.SplitHostPort(in.Addr)
	if err != nil {
		return fmt.Errorf("fill instance %s: %w", in.ID, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("fill instance %s: port %q: %w", in.ID, portStr, err)
	}
	node := f.node(i)
	_, err = f.reg.Client().Catalog().Register(&api.CatalogRegistration{
		Node:           node,
		Address:        host,
		SkipNodeUpdate: true,
		Service: &api.AgentService{
			ID: in.ID, Service: f.reg.ServiceName(in.Tenant), Address: host, Port: port,
			Tags: []string{consul.ServiceTag}, Meta: map[string]string{consul.MetaTenant: in.Tenant},
		},
		Check: &api.AgentCheck{
			Node: node, CheckID: "service:" + in.ID, Name: "campus app ready", Status: api.HealthPassing, ServiceID: in.ID,
		},
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("register fill instance %s on node %s in the catalog: %w", in.ID, node, err)
	}
	return nil
}

// remove deletes the fill nodes, with their services and checks.
func (f catalogFill) remove(ctx context.Context) {
	for i := range f.nodes {
		f.reg.Client().Catalog().Deregister(&api.CatalogDeregistration{Node: f.node(i)}, (&api.WriteOptions{}).WithContext(ctx))
	}
}

// fillCatalog creates n tenants named prefix-<i> and registers each one's
// instance with fill, workers at a time; the names go to created.
func fillCatalog(ctx context.Context, reg registry.Registry, fill *catalogFill, prefix, upstream string, n, workers int, created *[]string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("%s-%d", prefix, i)
				t, err := registry.NewTenant(name, []string{name + ".bench.localhost"}, "")
				if err == nil {
					_, err = reg.CreateTenant(ctx, t)
				}
				if err != nil {
					cancel(fmt.Errorf("create tenant %s: %w", name, err))
					continue
				}
				mu.Lock()
				*created = append(*created, name)
				mu.Unlock()
				if err := fill.register(ctx, i, registry.Instance{ID: name, Tenant: name, Addr: upstream, Healthy: true}); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
