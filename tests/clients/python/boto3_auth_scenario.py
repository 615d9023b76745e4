"""Client authentication with boto3: the proxy verifies botocore's SigV4 signatures.

The proxy is started with two keys: test/test (every table and operation) and
reader/reader-secret (only the scenario's table, only GetItem, Query and DescribeTable).

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
        sys.exit(f"boto3 auth scenario FAILED at {step}: {msg}")
    print(f"ok: {step}", flush=True)


def client(key_id, secret):
    return boto3.client(
        "dynamodb",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def error_code(step, call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    check(False, step, "succeeded, expected a refusal")


admin = client("test", "test")
reader = client("reader", "reader-secret")

# 1. the admin key creates the table and an item
admin.create_table(
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
admin.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
admin.put_item(TableName=TABLE, Item={**KEY, "name": {"S": "Ada"}})
print("ok: 1 admin creates and puts", flush=True)

# 2. the reader gets it twice (a miss, then a hit) and queries
for i in (1, 2):
    item = reader.get_item(TableName=TABLE, Key=KEY).get("Item")
    check(item is not None and item["name"] == {"S": "Ada"}, f"2 reader get #{i}", f"got {item!r}")
items = reader.query(
    TableName=TABLE,
    KeyConditionExpression="pk = :pk",
    ExpressionAttributeValues={":pk": {"S": "user#1"}},
)["Items"]
check(len(items) == 1, "2 reader query", f"got {items!r}")

# 3. the reader may not write, nor list tables
code = error_code("3 reader put", lambda: reader.put_item(TableName=TABLE, Item={**KEY, "name": {"S": "Eve"}}))
check(code == "AccessDeniedException", "3 reader put", f"error code {code!r}")
code = error_code("3 reader list", lambda: reader.list_tables())
check(code == "AccessDeniedException", "3 reader list", f"error code {code!r}")

# 4. a wrong secret, an unknown key id
code = error_code("4 wrong secret", lambda: client("reader", "not-the-secret").get_item(TableName=TABLE, Key=KEY))
check(code == "InvalidSignatureException", "4 wrong secret", f"error code {code!r}")
code = error_code("4 unknown key", lambda: client("nobody", "x").get_item(TableName=TABLE, Key=KEY))
check(code == "UnrecognizedClientException", "4 unknown key", f"error code {code!r}")

# 5. the item is unchanged
item = admin.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True).get("Item")
check(item["name"] == {"S": "Ada"}, "5 item unchanged", f"got {item!r}")
