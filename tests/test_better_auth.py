"""Our dashboard operator against the real `better-auth` package, with Node: its password
verification accepts our hash (and we accept its), and its own migration planner
(`getMigrations`) finds nothing to create or add in the schema `ensure_auth_schema` made.

The npm install goes to the test's own temp dir and is then kept in a cache outside the repo
(~/.cache/clawdie-tests, or $CLAWDIE_TEST_CACHE) so later runs skip it; the cache is never
required. A cold install takes longer than 30 s, so the test is marked `slow` (run by
`just slow-test`) while the cache is missing and joins the fast suite once it exists.
Without node/npm, or without the registry, the test skips and says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from installer.firstboot.db import auth, bootstrap
from installer.seed.hashes import hash_better_auth_password, verify_better_auth_password
from tests.helpers.better_auth import (
    COLD,
    _better_auth,
    node,
)
from tests.helpers.pg import PgCluster

PASSWORDS = ["correct horse battery staple", "Ünïcødé ｆｕｌｌｗｉｄｔｈ パスワード #=:"]

# passwords arrive on stdin, never argv; our hashes are checked and theirs made
SCRIPT = """
import { hashPassword, verifyPassword } from "better-auth/crypto";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const cases = JSON.parse(input);
const out = [];
for (const c of cases) {
  out.push({
    ours_ok: await verifyPassword({ hash: c.ours, password: c.password }),
    ours_wrong: await verifyPassword({ hash: c.ours, password: c.password + "x" }),
    theirs: await hashPassword(c.password),
  });
}
console.log(JSON.stringify(out));
"""


pytestmark = [pytest.mark.slow] if COLD else []


def test_better_auth_accepts_our_hash_and_we_accept_theirs(tmp_path: Path) -> None:
    where = _better_auth(tmp_path)
    cases = [{"password": p, "ours": hash_better_auth_password(p)} for p in PASSWORDS]
    results = node(where, "check-hash.mjs", SCRIPT, json.dumps(cases))
    for password, result in zip(PASSWORDS, results, strict=True):
        assert result["ours_ok"] is True
        assert result["ours_wrong"] is False
        assert verify_better_auth_password(password, result["theirs"])
        assert not verify_better_auth_password(password + "x", result["theirs"])


# the connection string arrives in the environment, never on the command line
MIGRATIONS = """
import { getMigrations } from "better-auth/db/migration";
import pg from "pg";
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const plan = await getMigrations({ database: pool, emailAndPassword: { enabled: true } });
await pool.end();
console.log(JSON.stringify({
  toBeCreated: plan.toBeCreated.map((t) => t.table),
  toBeAdded: plan.toBeAdded.map((t) => [t.table, Object.keys(t.fields)]),
  toBeAddedIndexes: (plan.toBeAddedIndexes ?? []).map((i) => i.name),
  unsafeChanges: plan.unsafeChanges ?? [],
  schemaProblems: plan.schemaProblems ?? [],
}));
"""


def test_better_auth_finds_our_schema_complete(tmp_path: Path, pg: PgCluster) -> None:
    where = _better_auth(tmp_path)
    password = "schema-check-password"
    bootstrap.bootstrap_platform(pg.admin_conninfo(), role="clawdie", password=password)
    query = urlencode({"host": str(pg.sockdir), "port": str(pg.port)})
    env = {"DATABASE_URL": f"postgresql://clawdie:{password}@localhost/system_ops?{query}"}
    before = node(where, "migrations.mjs", MIGRATIONS, "", env)
    assert before["toBeCreated"] == ["user", "session", "account", "verification"]
    auth.ensure_auth_schema(pg.conninfo("clawdie", password, "system_ops"))
    after = node(where, "migrations.mjs", MIGRATIONS, "", env)
    assert after == {
        "toBeCreated": [],
        "toBeAdded": [],
        "toBeAddedIndexes": [],
        "unsafeChanges": [],
        "schemaProblems": [],
    }
