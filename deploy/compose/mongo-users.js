// mongo-users.js: gives every Campus MongoDB credential its database user,
// idempotently (create the user, or reset its password and roles).
//
// Run by mongosh, e.g. by the mongo-users service of docker-compose.yml:
//
//   mongosh --nodb --quiet --file mongo-users.js
//
// For every file named mongodb_uri_<name> in $SECRETS_DIR (default
// /run/secrets) holding mongodb://USER:PASSWORD@HOST/DB?authSource=DB:
//   - mongodb_uri_admin: USER in database admin with readWriteAnyDatabase
//     and dbAdminAnyDatabase (operator commands: tenant create, migrate,
//     delete --purge-data);
//   - mongodb_uri_<tenant>: USER in database <tenant> with readWrite on
//     <tenant> and nothing else, so a tenant's app process cannot read or
//     write another tenant's database.
//
// Connects as MongoDB's root user: $MONGO_ROOT_USER (default root) with the
// password in the file $MONGO_ROOT_PASSWORD_FILE, at $MONGO_HOST (default
// mongo:27017). Without MONGO_ROOT_PASSWORD_FILE it uses the connection mongosh
// was started with (`mongosh "$ADMIN_URI" --file mongo-users.js`), as the
// Nomad guide does. Passwords are read from files, never from the command
// line, and never printed.

const fs = require('fs');
const path = require('path');

const secretsDir = process.env.SECRETS_DIR || '/run/secrets';
const prefix = 'mongodb_uri_';
const adminName = 'admin';
// Databases of MongoDB itself: never a tenant.
const reserved = ['admin', 'local', 'config'];

function readSecret(file) {
  return fs.readFileSync(file, 'utf8').trim();
}

// parseCredential turns a connection string into the user to ensure.
function parseCredential(name, uri) {
  let u;
  try {
    u = new URL(uri);
  } catch (e) {
    throw new Error(`${prefix}${name}: not a valid connection string`);
  }
  if (u.protocol !== 'mongodb:' && u.protocol !== 'mongodb+srv:') {
    throw new Error(`${prefix}${name}: want a mongodb:// connection string`);
  }
  const user = decodeURIComponent(u.username);
  const pwd = decodeURIComponent(u.password);
  if (!user || !pwd) {
    throw new Error(`${prefix}${name}: the connection string needs a user and a password`);
  }
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const authSource = u.searchParams.get('authSource') || db;
  if (name === adminName) {
    if (authSource !== 'admin') {
      throw new Error(`${prefix}${name}: want authSource=admin`);
    }
    return {
      user, pwd, db: 'admin',
      roles: [
        { role: 'readWriteAnyDatabase', db: 'admin' },
        { role: 'dbAdminAnyDatabase', db: 'admin' },
      ],
    };
  }
  if (reserved.includes(name)) {
    throw new Error(`${prefix}${name}: ${name} is not a tenant name`);
  }
  // A tenant's database is named after the tenant, and its user lives in
  // that database: the user cannot even authenticate against another one.
  if (db !== name || authSource !== name) {
    throw new Error(`${prefix}${name}: want database and authSource ${name}, got ${db || '(none)'} and ${authSource || '(none)'}`);
  }
  return { user, pwd, db: name, roles: [{ role: 'readWrite', db: name }] };
}

function credentials() {
  const names = fs.readdirSync(secretsDir)
    .filter((f) => f.startsWith(prefix))
    .map((f) => f.slice(prefix.length))
    .sort();
  if (names.length === 0) {
    throw new Error(`no ${prefix}* files in ${secretsDir}`);
  }
  return names.map((name) => parseCredential(name, readSecret(path.join(secretsDir, prefix + name))));
}

function connectRoot() {
  const rootFile = process.env.MONGO_ROOT_PASSWORD_FILE;
  if (!rootFile) {
    if (typeof db === 'undefined' || !db) {
      throw new Error('set MONGO_ROOT_PASSWORD_FILE or start mongosh with an admin connection string');
    }
    return db.getMongo();
  }
  const host = process.env.MONGO_HOST || 'mongo:27017';
  const user = process.env.MONGO_ROOT_USER || 'root';
  const pwd = readSecret(rootFile);
  const uri = `mongodb://${encodeURIComponent(user)}:${encodeURIComponent(pwd)}@${host}/admin?authSource=admin`;
  const attempts = 30;
  for (let i = 1; ; i++) {
    try {
      const conn = new Mongo(uri);
      conn.getDB('admin').runCommand({ ping: 1 });
      return conn;
    } catch (e) {
      if (i >= attempts) {
        throw new Error(`cannot reach MongoDB at ${host} as ${user}: ${e.message}`);
      }
      print(`waiting for MongoDB at ${host} (${i}/${attempts})`);
      sleep(2000);
    }
  }
}

function ensureUser(conn, c) {
  const d = conn.getDB(c.db);
  if (d.getUser(c.user)) {
    d.updateUser(c.user, { pwd: c.pwd, roles: c.roles });
    print(`updated user ${c.user} in database ${c.db}`);
  } else {
    d.createUser({ user: c.user, pwd: c.pwd, roles: c.roles });
    print(`created user ${c.user} in database ${c.db}`);
  }
}

const creds = credentials(); // validate every file before changing anything
const conn = connectRoot();
for (const c of creds) {
  ensureUser(conn, c);
}
