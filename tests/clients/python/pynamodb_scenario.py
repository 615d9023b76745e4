"""The real-client scenario with PynamoDB (a Model pointed at the proxy).

Env: DDBCACHE_ENDPOINT (http://host:port), DDBCACHE_TABLE.
"""

import os
import sys

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model


def check(cond, step, msg):
    if not cond:
        sys.exit(f"pynamodb scenario FAILED at {step}: {msg}")
    print(f"ok: {step}", flush=True)


class Profile(Model):
    class Meta:
        table_name = os.environ["DDBCACHE_TABLE"]
        host = os.environ["DDBCACHE_ENDPOINT"]
        region = "us-east-1"
        aws_access_key_id = "test"
        aws_secret_access_key = "test"
        max_retry_attempts = 0

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    n = NumberAttribute(null=True)


def get():
    try:
        return Profile.get("user#1", "profile")
    except Profile.DoesNotExist:
        return None


def query():
    return list(Profile.query("user#1"))


# 1. create table, waiting until ACTIVE
Profile.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
status = Profile.describe_table()["TableStatus"]
check(status == "ACTIVE", "1 create table", f"status {status!r}")

# 2. put
Profile(pk="user#1", sk="profile", name="Ada", n=1).save()
print("ok: 2 put item", flush=True)

# 3. get twice (the second is served from the proxy's cache)
for i in (1, 2):
    p = get()
    check(p is not None and p.name == "Ada" and p.n == 1, f"3 get #{i}", f"got {p and p.attribute_values!r}")

# 4. query
items = query()
check(len(items) == 1 and items[0].name == "Ada", "4 query", f"got {[i.attribute_values for i in items]!r}")

# 5. update (PynamoDB writes `SET #0 = :0` with its own placeholders)
p = get()
p.update(actions=[Profile.name.set("Grace")])
print("ok: 5 update item", flush=True)

# 6. a fresh get sees the update (the cached item was invalidated)
p = get()
check(p is not None and p.name == "Grace", "6 get after update", f"got {p and p.attribute_values!r}")

# 7. query sees the update
items = query()
check(len(items) == 1 and items[0].name == "Grace", "7 query after update", f"got {[i.attribute_values for i in items]!r}")

# 8. delete
p.delete()
print("ok: 8 delete item", flush=True)

# 9. get and query see nothing
p = get()
check(p is None, "9 get after delete", f"got {p and p.attribute_values!r}")
items = query()
check(items == [], "9 query after delete", f"got {[i.attribute_values for i in items]!r}")

# 10. conditional put on an existing item fails
Profile(pk="user#1", sk="profile", name="Ada").save()
try:
    Profile(pk="user#1", sk="profile", name="Mallory").save(condition=Profile.pk.does_not_exist())
    check(False, "10 conditional put", "succeeded on an existing item")
except PutError as e:
    code = e.cause_response_code
    check(code == "ConditionalCheckFailedException", "10 conditional put", f"error code {code!r}: {e}")
p = get()
check(p is not None and p.name == "Ada", "10 item unchanged", f"got {p and p.attribute_values!r}")

# 11. delete table
Profile.delete_table()
print("ok: 11 delete table", flush=True)
print("pynamodb scenario passed")
