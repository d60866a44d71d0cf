// Package backup writes and reads the archive of one tenant: its registry
// record and every collection of its database that is worth keeping. It
// sits at the store layer: it is handed one *mongo.Database (the tenant's,
// chosen by the caller from the registry record) and never picks a
// database by itself.
//
// # Format (version 1)
//
// An archive is a gzip stream of UTF-8 lines, each one JSON object with
// exactly one key (the line's kind), in this order:
//
//	{"header":{"format":"campus-tenant-backup","version":1,"created_at":…,
//	    "tenant":{…registry.Tenant as JSON…},"schema_version":1,
//	    "consistency":"snapshot|suspended|live","campus_version":"…"}}
//	{"collection":"students"}
//	{"doc":{…one document as canonical MongoDB Extended JSON v2…}}
//	…                                   every document of that collection
//	{"collection":"users"}
//	…
//	{"trailer":{"collections":{"students":100000,"users":2,…},
//	    "documents":100002,"sha256":"…"}}
//
// sha256 is the lowercase hex SHA-256 of every byte before the trailer
// line (uncompressed, newlines included). An archive is valid only when it
// ends with a trailer whose counts and checksum match what precedes it and
// nothing follows; Verify checks that without writing anything, so a
// truncated or altered archive is refused before a restore starts. (Verify
// trusts the checksum for the documents themselves; Load parses each one
// as it writes it, so a crafted archive with a valid checksum and a
// malformed document fails there, and the caller undoes the restore.)
//
// The tenant record is the registry's JSON of registry.Tenant, so fields
// added to it later travel without a format change; a reader decodes the
// fields its own binary knows. Canonical Extended JSON keeps BSON types
// exactly (int64 stays int64, dates stay dates), so a restore writes back
// the very documents that were read, password hashes as stored.
//
// # What is in it
//
// Every collection of the tenant's database, listed at backup time, except
// those in Excluded: sessions, login attempts and one-time tokens (a
// restored school starts with everybody logged out and no reset link
// valid), the read model's change journal and its saved copy (derived
// from students), and
// MongoDB's own system.* collections. The meta collection is
// kept, except its tenant-ID stamp: a restore stamps the database for the
// tenant it restores into (the same ID, or a new one with --as). Indexes
// are not archived: a restore runs the schema migration, which creates
// them. Collections are written in name order, except id_claims, counters
// and meta, which come last: the student ID claims and counter are read
// after the students, so a restored school never hands out an ID that a
// restored student has.
//
// # Consistency
//
// On a MongoDB replica set (or sharded cluster) every read of one backup
// runs in one snapshot session (read concern "snapshot"): the archive is
// the database at one instant, while the school keeps working. FerretDB
// and a standalone mongod have no snapshot reads; there a backup is
// "live": each collection is read by one cursor while writes go on, so a
// write made during the backup may or may not be in it (the counters are
// still read last). For an exact copy there, the caller suspends the
// tenant around the backup (`campus tenant backup --consistency suspend`);
// the header records which of the three the archive got.
package backup
