"""The real-client scenario with boto3's low-level DynamoDB client.

botocore checks the x-amz-crc32 header of every DynamoDB response, so this
also proves the proxy computes the CRC right on cache hits.

Env: DDBCACHE_ENDPOINT (http://host:port), DDBCACHE_TABLE.
"""

import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["DDBCACHE_ENDPOINT"]
TABLE = os.environ["DDBCACHE_TABLE"]
KEY = {"pk": {"S": "user#1"}, "sk": {"S": "profile"}}


def check(cond, step, msg):
    if not cond:
        sys.exit(f"boto3 scenario FAILED at {step}: {msg}")
    print(f"ok: {step}", flush=True)


ddb = boto3.client(
    "dynamodb",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"max_attempts": 1}),
)


def get():
    return ddb.get_item(TableName=TABLE, Key=KEY).get("Item")


def query():
    return ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "user#1"}},
    )["Items"]


# 1. create table and wait for it
ddb.create_table(
    TableName=TABLE,
    KeySchema=[
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    AttributeDefinitions=[
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    BillingMode="PAY_PER_REQUEST",
)
ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
status = ddb.describe_table(TableName=TABLE)["Table"]["TableStatus"]
check(status == "ACTIVE", "1 create table", f"status {status!r}")

# 2. put
ddb.put_item(TableName=TABLE, Item={**KEY, "name": {"S": "Ada"}, "n": {"N": "1"}})
print("ok: 2 put item", flush=True)

# 3. get twice (the second is served from the proxy's cache)
for i in (1, 2):
    item = get()
    ok = item is not None and item["name"] == {"S": "Ada"} and item["n"] == {"N": "1"}
    check(ok, f"3 get #{i}", f"got {item!r}")

# 4. query
items = query()
check(len(items) == 1 and items[0]["name"] == {"S": "Ada"}, "4 query", f"got {items!r}")

# 5. update
ddb.update_item(
    TableName=TABLE,
    Key=KEY,
    UpdateExpression="SET #n = :v",
    ExpressionAttributeNames={"#n": "name"},
    ExpressionAttributeValues={":v": {"S": "Grace"}},
)
print("ok: 5 update item", flush=True)

# 6. get sees the update (the cached item was invalidated)
item = get()
check(item is not None and item["name"] == {"S": "Grace"}, "6 get after update", f"got {item!r}")

# 7. query sees the update
items = query()
check(len(items) == 1 and items[0]["name"] == {"S": "Grace"}, "7 query after update", f"got {items!r}")

# 8. delete
ddb.delete_item(TableName=TABLE, Key=KEY)
print("ok: 8 delete item", flush=True)

# 9. get and query see nothing
item = get()
check(item is None, "9 get after delete", f"got {item!r}")
items = query()
check(items == [], "9 query after delete", f"got {items!r}")

# 10. conditional put on an existing item fails
ddb.put_item(TableName=TABLE, Item={**KEY, "name": {"S": "Ada"}})
try:
    ddb.put_item(
        TableName=TABLE,
        Item={**KEY, "name": {"S": "Mallory"}},
        ConditionExpression="attribute_not_exists(pk)",
    )
    check(False, "10 conditional put", "succeeded on an existing item")
except ClientError as e:
    code = e.response["Error"]["Code"]
    check(code == "ConditionalCheckFailedException", "10 conditional put", f"error code {code!r}: {e}")
item = get()
check(item is not None and item["name"] == {"S": "Ada"}, "10 item unchanged", f"got {item!r}")

# 11. delete table
ddb.delete_table(TableName=TABLE)
print("ok: 11 delete table", flush=True)
print("boto3 scenario passed")
