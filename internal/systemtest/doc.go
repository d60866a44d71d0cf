// Package systemtest is the one harness for "start the whole system in a
// test", shared by every suite that needs it (e2e, cmd/campus,
// deploy/deploytest) and by internal/engines for the real Consul and
// Prometheus. It has one job, starting and stopping the processes of a
// test, and offers:
//
//   - [BuildCampus]: the campus binary, built once per test binary (call it
//     from TestMain, [Binary.Remove] after m.Run);
//   - [Start] and [StartForTest]: a long-running process with its output kept
//     (and tailed into the test log when the test fails), stopped with
//     SIGTERM (or the signal asked for) and SIGKILL after a grace period,
//     and killed by the kernel if the test binary dies (Linux);
//   - [FreePort], [FreePorts], [FreeAddr]: loopback ports free a moment ago;
//   - [Eventually] and [Process.WaitUntil]: polling with generous deadlines
//     (the machine is busy) that gives up early when the process exits;
//   - [StartDev] and [DevForTest]: `campus dev` on its embedded defaults
//     (or a real MongoDB from MONGODB_URI, or the registry the flags ask
//     for) on free ports, ready once its admin listener and the seeded
//     schools answer, returning what tests use: proxy and admin addresses,
//     Mongo URI, data folder and log.
//
// Tests pass their *testing.T as a [TB]. The package is linked into
// cmd/campus-bench (`campus-bench routing --start-consul`), never into
// the campus binary.
package systemtest
