// Run by the mongo-init Job as the root user, connected directly to mongo-0, before
// create-users.js. Idempotent:
//  - first run: initiates the replica set MONGO_REPLICA_SET with mongo-0 (priority 2, so it
//    is the preferred primary);
//  - every run: waits until mongo-0 is primary, then adds mongo-1 .. mongo-(MONGO_REPLICAS-1)
//    that are not members yet (scaling the StatefulSet up = raise MONGO_REPLICAS too).
const setName = process.env.MONGO_REPLICA_SET || "rs0";
const replicas = parseInt(process.env.MONGO_REPLICAS || "1", 10);
const service = process.env.MONGO_SERVICE || "mongo";
const member = (i) => `${service}-${i}.${service}:27017`;

let initiated = true;
try {
  rs.status();
} catch (error) {
  if (error.codeName !== "NotYetInitialized") {
    throw error;
  }
  initiated = false;
}
if (!initiated) {
  rs.initiate({ _id: setName, members: [{ _id: 0, host: member(0), priority: 2 }] });
  print(`hcrm: replica set ${setName} initiated with ${member(0)}`);
}

let waited = 0;
while (!db.hello().isWritablePrimary) {
  if (waited >= 180) {
    throw new Error(`${member(0)} is not primary after ${waited} s (is another member primary?)`);
  }
  sleep(1000);
  waited += 1;
}

const known = rs.conf().members.map((m) => m.host);
for (let i = 1; i < replicas; i += 1) {
  if (!known.includes(member(i))) {
    rs.add({ host: member(i), priority: 1 });
    print(`hcrm: ${member(i)} added to ${setName}`);
  }
}
print(`hcrm: replica set ${setName}: ${rs.conf().members.map((m) => m.host).join(", ")}`);
