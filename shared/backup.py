"""`hcrm backup DIR` and `hcrm restore DIR`: every service's database, with a manifest.

A backup is a folder: one file per collection (`<database>/<collection>.jsonl`, MongoDB
Extended JSON, one document a line, so dates, binaries and ids keep their types) and
`manifest.json` naming the platform's version, when it was taken, and each file's document
count and SHA-256. A restore checks the whole manifest *before* it touches anything, and
refuses a damaged (a checksum or count that does not match, a file missing) or mismatched
(another format, a database this installation does not have) backup with a message saying
which file and why.

Consistency: each database is read inside one snapshot session where the store offers it
(MongoDB 5+ replica sets: `snapshot=True`), so it is consistent in itself; elsewhere (a single
local store) take the backup with the services stopped (`make down` keeps the store's data,
`hcrm backup` starts nothing). Production MongoDB is better backed up with its own tools
(mongodump --oplog, or the storage snapshots / point-in-time recovery of the hosting): see
the README's operations section. This command is for the local store, small installations,
moving an installation, and the restore test.
"""

import argparse
import datetime
import hashlib
import json
import pathlib
from collections.abc import Mapping
from typing import Any

from bson import json_util
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import OperationFailure

from shared.config import BaseConfig, load_config
from shared.store import connect

FORMAT = "hcrm-backup/1"
MANIFEST = "manifest.json"
# Every process with a database of its own (the gateway: users, keys, audit; hl7: raw messages).
DATABASE_OWNERS = (
    "intake",
    "followup",
    "appointments",
    "complaints",
    "analytics",
    "gateway",
    "hl7",
    "campaigns",
)
JSON_OPTIONS = json_util.JSONOptions(
    json_mode=json_util.JSONMode.CANONICAL, tz_aware=True, tzinfo=datetime.UTC
)


class BackupError(Exception):
    """A backup that cannot be written, or one that must not be restored (the message says why)."""


def databases(env: Mapping[str, str] | None = None) -> dict[str, Database[dict[str, Any]]]:
    """{owner: pymongo Database} of every owner's configured store."""
    found = {}
    for owner in DATABASE_OWNERS:
        config = load_config(owner, BaseConfig, env=env)
        found[owner] = connect(config["mongo_uri"], owner)
    return found


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hcrm")
    except Exception:  # running from a checkout that is not installed
        return "unknown"


def _dump_collection(
    database: Database[dict[str, Any]], name: str, path: pathlib.Path, session: ClientSession | None
) -> dict[str, Any]:
    digest, count = hashlib.sha256(), 0
    with open(path, "wb") as out:
        for document in database[name].find({}, session=session).sort("_id", 1):
            line = (
                json_util.dumps(document, json_options=JSON_OPTIONS, sort_keys=True) + "\n"
            ).encode()
            out.write(line)
            digest.update(line)
            count += 1
    return {"documents": count, "sha256": digest.hexdigest()}


def _snapshot(database: Database[dict[str, Any]]) -> ClientSession | None:
    """A snapshot session where the store has one (consistent reads), else None."""
    try:
        session = database.client.start_session(snapshot=True)
        database.list_collection_names(session=session)  # fails here if unsupported
        return session
    except (OperationFailure, NotImplementedError, ValueError, TypeError):
        # A single node, or a store without snapshot reads: the caller says so.
        return None


def backup(
    target: str | pathlib.Path,
    dbs: Mapping[str, Database[dict[str, Any]]] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Write a backup of every database to the folder `target` (which must be empty or new).
    Returns the manifest."""
    target = pathlib.Path(target)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: back up into a new folder")
    dbs = databases() if dbs is None else dbs
    now = now or datetime.datetime.now(datetime.UTC)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "hcrm_version": _version(),
        "taken_at": now.isoformat(),
        "databases": {},
    }
    for owner, database in dbs.items():
        folder = target / owner
        folder.mkdir(parents=True)
        session = _snapshot(database)
        try:
            collections = {}
            for name in sorted(database.list_collection_names(session=session)):
                if name.startswith("system."):
                    continue
                collections[name] = _dump_collection(
                    database, name, folder / f"{name}.jsonl", session
                )
        finally:
            if session is not None:
                session.end_session()
        manifest["databases"][owner] = {
            "name": database.name,
            "consistent_snapshot": session is not None,
            "collections": collections,
        }
    (target / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return manifest


def verify(source: str | pathlib.Path) -> dict[str, Any]:
    """The manifest of the backup in `source`, after checking every file against it."""
    source = pathlib.Path(source)
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"{source} holds no {MANIFEST}: not an HCRM backup")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackupError(f"{manifest_path} is damaged: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{manifest_path}: format {manifest.get('format')!r}, this version reads {FORMAT!r}"
        )
    for owner, entry in manifest.get("databases", {}).items():
        if owner not in DATABASE_OWNERS:
            raise BackupError(
                f"the backup holds a database for {owner!r}, which this version does not have"
            )
        for name, expected in entry["collections"].items():
            path = source / owner / f"{name}.jsonl"
            if not path.is_file():
                raise BackupError(f"{path} is missing")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != expected["sha256"]:
                raise BackupError(f"{path} is damaged: its checksum does not match the manifest")
            lines = data.count(b"\n")
            if lines != expected["documents"]:
                raise BackupError(
                    f"{path} is damaged: {lines} documents, the manifest says "
                    f"{expected['documents']}"
                )
    return manifest


def restore(
    source: str | pathlib.Path,
    dbs: Mapping[str, Database[dict[str, Any]]] | None = None,
    batch: int = 1000,
) -> dict[str, int]:
    """Replace every database's content with the backup's. Checks everything first; the
    services must be stopped (they recreate their indexes when they start)."""
    manifest = verify(source)
    dbs = databases() if dbs is None else dbs
    missing = set(manifest["databases"]) - set(dbs)
    if missing:
        raise BackupError(f"this installation has no database for {sorted(missing)}")
    restored = {}
    for owner, entry in manifest["databases"].items():
        database = dbs[owner]
        for name in database.list_collection_names():
            if not name.startswith("system."):
                database.drop_collection(name)
        for name in entry["collections"]:
            documents, count = [], 0
            with open(pathlib.Path(source) / owner / f"{name}.jsonl", "rb") as lines:
                for line in lines:
                    documents.append(json_util.loads(line, json_options=JSON_OPTIONS))
                    if len(documents) >= batch:
                        database[name].insert_many(documents, ordered=False)
                        count, documents = count + len(documents), []
            if documents:
                database[name].insert_many(documents, ordered=False)
                count += len(documents)
            restored[f"{owner}/{name}"] = count
    return restored


def main(args: argparse.Namespace) -> int:
    try:
        if args.command == "backup":
            manifest = backup(args.dir)
            for owner, entry in manifest["databases"].items():
                total = sum(c["documents"] for c in entry["collections"].values())
                note = (
                    ""
                    if entry["consistent_snapshot"]
                    else "  (no snapshot: stop the services for a consistent copy)"
                )
                print(
                    f"{owner:13} {entry['name']:20} {len(entry['collections']):3} collections "
                    f"{total:9} documents{note}"
                )
            print(
                f"backup written to {args.dir} ({MANIFEST} lists every file's count and checksum)"
            )
        else:
            if not args.yes:
                answer = input(
                    f"Replace every HCRM database with the backup in {args.dir}? "
                    "The services must be stopped. [y/N] "
                )
                if answer.strip().lower() not in ("y", "yes"):
                    print("nothing restored")
                    return 1
            restored = restore(args.dir)
            print(
                f"restored {sum(restored.values())} documents in {len(restored)} collections "
                f"from {args.dir}"
            )
    except BackupError as exc:
        print(f"hcrm {args.command}: {exc}")
        return 2
    return 0
