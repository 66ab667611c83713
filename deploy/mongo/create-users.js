// One database and one user per HCRM process: user <name> may only readWrite hcrm_<name>,
// authenticating against that same database (authSource=hcrm_<name> in its URI).
//
// Passwords come from the environment: <NAME>_DB_PASSWORD (INTAKE_DB_PASSWORD, ...,
// GATEWAY_DB_PASSWORD). Use URL-safe passwords (e.g. `openssl rand -hex 24`): they are
// put into mongodb:// URIs as they are.
//
// Idempotent: an existing user gets its password and roles reset, so running it again
// after changing a password rotates it.
// - docker compose: mounted into /docker-entrypoint-initdb.d; the mongo image runs it as
//   the root user on the first start of an empty data volume only (re-run it by hand with
//   mongosh to rotate, docs/DEPLOYMENT.md).
// - Kubernetes: the mongo-init Job runs it (k8s/base/mongo/create-users.js is a copy;
//   tests/deploy checks the two are identical).
const HCRM_DATABASE_OWNERS = ["intake", "followup", "appointments", "complaints", "analytics", "hl7", "campaigns", "gateway"];

for (const name of HCRM_DATABASE_OWNERS) {
  const variable = `${name.toUpperCase()}_DB_PASSWORD`;
  const pwd = process.env[variable];
  if (!pwd || pwd.length < 16) {
    throw new Error(`${variable} is not set or shorter than 16 characters`);
  }
  const dbName = `hcrm_${name}`;
  const database = db.getSiblingDB(dbName);
  const roles = [{ role: "readWrite", db: dbName }];
  if (database.getUser(name)) {
    database.updateUser(name, { pwd, roles });
    print(`hcrm: user ${name} on ${dbName} updated`);
  } else {
    database.createUser({ user: name, pwd, roles });
    print(`hcrm: user ${name} on ${dbName} created`);
  }
}
