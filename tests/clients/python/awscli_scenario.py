"""The real-client scenario with the AWS CLI v1, run as a subprocess.

Drives the `aws` executable installed next to this Python (the client venv)
with --endpoint-url and parses its JSON output. Credentials and region come
from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION), as a user would set them.

Env: DDBCACHE_ENDPOINT (http://host:port), DDBCACHE_TABLE.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ENDPOINT = os.environ["DDBCACHE_ENDPOINT"]
TABLE = os.environ["DDBCACHE_TABLE"]
AWS = str(Path(sys.executable).parent / "aws")
KEY = json.dumps({"pk": {"S": "user#1"}, "sk": {"S": "profile"}})
QUERY = ["--key-condition-expression", "pk = :pk",
         "--expression-attribute-values", json.dumps({":pk": {"S": "user#1"}})]


def check(cond, step, msg):
    if not cond:
        sys.exit(f"awscli scenario FAILED at {step}: {msg}")
    print(f"ok: {step}", flush=True)


def aws(*args, expect_ok=True):
    """Runs `aws dynamodb ARGS`; returns (exit code, parsed stdout or None, stderr)."""
    cmd = [AWS, "dynamodb", *args, "--endpoint-url", ENDPOINT, "--region", "us-east-1", "--output", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if expect_ok and p.returncode != 0:
        sys.exit(f"awscli scenario FAILED: `aws dynamodb {' '.join(args)}` exited {p.returncode}\n"
                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
    out = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, out, p.stderr


def get():
    return aws("get-item", "--table-name", TABLE, "--key", KEY)[1] or {}


def query():
    return aws("query", "--table-name", TABLE, *QUERY)[1]


# 1. create table and wait for it
aws("create-table", "--table-name", TABLE,
    "--key-schema", "AttributeName=pk,KeyType=HASH", "AttributeName=sk,KeyType=RANGE",
    "--attribute-definitions", "AttributeName=pk,AttributeType=S", "AttributeName=sk,AttributeType=S",
    "--billing-mode", "PAY_PER_REQUEST")
aws("wait", "table-exists", "--table-name", TABLE)
status = aws("describe-table", "--table-name", TABLE)[1]["Table"]["TableStatus"]
check(status == "ACTIVE", "1 create table", f"status {status!r}")

# 2. put
aws("put-item", "--table-name", TABLE,
    "--item", json.dumps({"pk": {"S": "user#1"}, "sk": {"S": "profile"}, "name": {"S": "Ada"}, "n": {"N": "1"}}))
print("ok: 2 put item", flush=True)

# 3. get twice (the second is served from the proxy's cache)
for i in (1, 2):
    item = get().get("Item")
    ok = item is not None and item["name"] == {"S": "Ada"} and item["n"] == {"N": "1"}
    check(ok, f"3 get #{i}", f"got {item!r}")

# 4. query
out = query()
check(out["Count"] == 1 and out["Items"][0]["name"] == {"S": "Ada"}, "4 query", f"got {out!r}")

# 5. update
aws("update-item", "--table-name", TABLE, "--key", KEY,
    "--update-expression", "SET #n = :v",
    "--expression-attribute-names", json.dumps({"#n": "name"}),
    "--expression-attribute-values", json.dumps({":v": {"S": "Grace"}}))
print("ok: 5 update item", flush=True)

# 6. get sees the update (the cached item was invalidated)
item = get().get("Item")
check(item is not None and item["name"] == {"S": "Grace"}, "6 get after update", f"got {item!r}")

# 7. query sees the update
out = query()
check(out["Count"] == 1 and out["Items"][0]["name"] == {"S": "Grace"}, "7 query after update", f"got {out!r}")

# 8. delete
aws("delete-item", "--table-name", TABLE, "--key", KEY)
print("ok: 8 delete item", flush=True)

# 9. get and query see nothing
out = get()
check("Item" not in out, "9 get after delete", f"got {out!r}")
out = query()
check(out["Count"] == 0 and out["Items"] == [], "9 query after delete", f"got {out!r}")

# 10. conditional put on an existing item fails: non-zero exit, error code on stderr
aws("put-item", "--table-name", TABLE,
    "--item", json.dumps({"pk": {"S": "user#1"}, "sk": {"S": "profile"}, "name": {"S": "Ada"}}))
rc, _, err = aws("put-item", "--table-name", TABLE,
                 "--item", json.dumps({"pk": {"S": "user#1"}, "sk": {"S": "profile"}, "name": {"S": "Mallory"}}),
                 "--condition-expression", "attribute_not_exists(pk)", expect_ok=False)
check(rc != 0 and "ConditionalCheckFailedException" in err, "10 conditional put", f"exit {rc}, stderr {err!r}")
item = get().get("Item")
check(item is not None and item["name"] == {"S": "Ada"}, "10 item unchanged", f"got {item!r}")

# 11. delete table
aws("delete-table", "--table-name", TABLE)
print("ok: 11 delete table", flush=True)
print("awscli scenario passed")
