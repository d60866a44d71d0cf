// Package tenancy owns the tenant lifecycle: create (all or nothing, with
// undo), suspend, resume, delete, restore, purge (one, or every tenant
// whose retention ended), backup (one, or all with retention), restore
// from an archive (the create saga again), fleet migration, drain, and
// opening a tenant's database under the ID-stamp policy.
//
// A [Manager] is built from a narrow [Registry], a [DatabaseAddress] (the
// one resolver of the database: flags, environment, the dev.json of
// `campus dev`), optional [Credentials] (Consul ACL tokens), a clock and
// [Hooks] as fields: no package state, so tests run in parallel. Errors
// are typed ([NameTakenError], [HostTakenError], [NotServedError],
// [UnknownTenantError], [UnreachableError], …) and worded for operators by
// the command line (cmd/campus/words.go); `campus dev`'s seed, the CLI and
// cmd/campus-bench call it.
//
// It sits above registry/, store/ and backup/ and below cmd/ and deploy/;
// nothing below imports it.
package tenancy
