// Package supervisor keeps one `campus app` child process per active
// tenant on the local machine: the process manager behind `campus dev`.
//
// Run is a loop over registry.Watch. For every active tenant without a
// child it picks a free loopback port, starts the child in its own process
// group (on Linux it also dies with the supervisor: Pdeathsig), waits for
// GET /readyz to answer 200 and registers the instance. It keeps checking
// /readyz and re-registers when health changes, restarts crashed children
// after an exponential, jittered, capped backoff, and stops the children
// of suspended or deleted tenants (deregister first, then SIGTERM to the
// group, SIGKILL after a grace period).
//
// Ownership: one goroutine per child owns that child's process and state;
// the Run loop only starts those goroutines and cancels them when the
// tenant is no longer wanted. Run returns after every child has stopped.
package supervisor
