#!/usr/bin/env python3
"""Writes the seed corpora: realistic DynamoDB request bodies, each prefixed with the operation
byte the target reads (decode_plan: index in Operation::ALL; canonical_key: GetItem, Query,
Scan = 0, 1, 2). Run from fuzz/: `python3 seeds/make_seeds.py`. Seeds are named seed-*, so a
corpus minimisation that drops one drops only a redundant input."""
import hashlib, json, os, re

here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, "..", "..", "src", "protocol", "target.rs")).read()
ops = re.findall(r"^    ([A-Z]\w+),$", src.split("operations!(")[1].split(");")[0], re.M)
assert len(ops) == 57, len(ops)

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"
S = lambda s: {"S": s}
N = lambda n: {"N": n}

seeds = [
    ("GetItem", {"TableName": "T", "Key": {"pk": S("user#1"), "sk": N("1.50")},
                 "ProjectionExpression": "#n, sk, tags[0], info.city",
                 "ExpressionAttributeNames": {"#n": "name"}}),
    ("GetItem", {"TableName": ARN + "Music", "Key": {"Artist": S("Nina Simone"), "Song": S("Sinnerman")},
                 "ConsistentRead": False, "ReturnConsumedCapacity": "TOTAL"}),
    ("GetItem", {"TableName": "Music", "Key": {"Artist": S("A"), "Song": S("B")}, "ConsistentRead": True}),
    ("GetItem", {"TableName": "T", "Key": {"pk": {"B": "AAEC"}, "sk": {"NS": ["3", "1.0", "2e0"]}},
                 "AttributesToGet": ["a", "b"]}),
    ("Query", {"TableName": "T", "KeyConditionExpression": "#p = :v AND sk BETWEEN :a AND :b",
               "ExpressionAttributeNames": {"#p": "pk", "#s": "status"},
               "ExpressionAttributeValues": {":v": S("user#1"), ":a": N("1"), ":b": N("10E-1"),
                                             ":st": {"SS": ["open", "closed"]}},
               "FilterExpression": "#s IN (:st) AND attribute_exists(total)",
               "Limit": 25, "ScanIndexForward": False, "Select": "ALL_ATTRIBUTES",
               "ExclusiveStartKey": {"pk": S("user#1"), "sk": N("5")},
               "ReturnConsumedCapacity": "INDEXES"}),
    ("Query", {"TableName": "Music", "IndexName": "ByYear",
               "KeyConditionExpression": "Artist = :a AND #y >= :y",
               "ExpressionAttributeNames": {"#y": "Year"},
               "ExpressionAttributeValues": {":a": S("Nina Simone"), ":y": N("1960")}}),
    ("Query", {"TableName": "Music", "IndexName": "BySong",
               "KeyConditionExpression": "Song = :s",
               "ExpressionAttributeValues": {":s": S("Sinnerman")}, "ProjectionExpression": "Artist"}),
    ("Query", {"TableName": "T", "KeyConditions": {
                   "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("x")]},
                   "sk": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [S("2024-")]}},
               "QueryFilter": {"n": {"ComparisonOperator": "GT", "AttributeValueList": [N("+0.5")]}},
               "ConditionalOperator": "AND"}),
    ("Query", {"TableName": "T", "KeyConditionExpression": "begins_with(sk, :s) and :v = pk",
               "ExpressionAttributeValues": {":v": {"M": {"b": N("2"), "a": {"L": [N("1"), {"NULL": True}, {"BOOL": False}]}}},
                                             ":s": S("m\u00e9\n\"q\"")}}),
    ("Scan", {"TableName": "T", "FilterExpression": "contains(#t, :x) OR size(#t) > :n",
              "ExpressionAttributeNames": {"#t": "tags"},
              "ExpressionAttributeValues": {":x": S("red"), ":n": N("0.0003e4")},
              "Segment": 1, "TotalSegments": 4, "Limit": 100}),
    ("Scan", {"TableName": ARN + "T", "IndexName": "gsi", "ProjectionExpression": "pk, sk"}),
    ("BatchGetItem", {"RequestItems": {"T": {"Keys": [{"pk": S("a"), "sk": N("1")}, {"pk": S("b"), "sk": N("2")}],
                                             "ProjectionExpression": "#n", "ExpressionAttributeNames": {"#n": "name"}},
                                       "Music": {"Keys": [{"Artist": S("A"), "Song": S("B")}], "ConsistentRead": True}}}),
    ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "T", "Key": {"pk": S("a")}}}]}),
    ("PutItem", {"TableName": "T", "Item": {"pk": S("user#1"), "sk": N("1"), "tags": {"SS": ["b", "a"]},
                                            "doc": {"M": {"x": {"L": [N("1.0"), S("y")]}}}},
                 "ConditionExpression": "attribute_not_exists(pk)", "ReturnValues": "ALL_OLD"}),
    ("UpdateItem", {"TableName": "Music", "Key": {"Artist": S("Nina Simone"), "Song": S("Sinnerman")},
                    "UpdateExpression": "SET #p = :p, Plays = if_not_exists(Plays, :z) + :one REMOVE Old ADD Tags :t",
                    "ExpressionAttributeNames": {"#p": "Price"},
                    "ExpressionAttributeValues": {":p": N("1.99"), ":z": N("0"), ":one": N("1"), ":t": {"SS": ["jazz"]}},
                    "ReturnValues": "UPDATED_NEW"}),
    ("DeleteItem", {"TableName": ARN + "T", "Key": {"pk": N("10e-1"), "sk": N("2")}}),
    ("DeleteItem", {"TableName": "Other", "Key": {"id": S("x")}}),
    ("BatchWriteItem", {"RequestItems": {
        "T": [{"PutRequest": {"Item": {"pk": S("a"), "sk": N("1")}}}, {"DeleteRequest": {"Key": {"pk": S("b"), "sk": N("2")}}}],
        ARN + "Music": [{"PutRequest": {"Item": {"Artist": S("A"), "Song": S("B")}}}],
        "Other": [{"DeleteRequest": {"Key": {"id": S("z")}}}]}}),
    ("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "T", "Item": {"pk": S("a"), "sk": N("1")}}},
        {"Update": {"TableName": ARN + "Music", "Key": {"Artist": S("A"), "Song": S("B")},
                    "UpdateExpression": "SET n = n + :one", "ExpressionAttributeValues": {":one": N("1")}}},
        {"Delete": {"TableName": "Other", "Key": {"id": S("x")}}},
        {"ConditionCheck": {"TableName": "T", "Key": {"pk": S("z"), "sk": N("0")},
                            "ConditionExpression": "attribute_exists(pk)"}}],
        "ClientRequestToken": "tok-1"}),
    ("ExecuteStatement", {"Statement": "SELECT * FROM \"Music\" WHERE Artist = ?", "Parameters": [S("Nina Simone")]}),
    ("ExecuteStatement", {"Statement": "UPDATE \"T\" SET x = 1 WHERE pk = 'a' AND sk = 1"}),
    ("ExecuteStatement", {"Statement": "INSERT INTO Music VALUE {'Artist':'A','Song':'B'}"}),
    ("ExecuteStatement", {"Statement": "DELETE FROM \"My\"\"Table\".\"idx\" WHERE pk = ?", "Parameters": [N("1")]}),
    ("BatchExecuteStatement", {"Statements": [{"Statement": "SELECT * FROM T WHERE pk = 'a'"},
                                              {"Statement": "update Music set x = 2 where Artist = 'A'"}]}),
    ("ExecuteTransaction", {"TransactStatements": [{"Statement": "EXISTS(SELECT * FROM T WHERE pk = 'a')"},
                                                   {"Statement": "DELETE FROM T WHERE pk = 'b'"}]}),
    ("CreateTable", {"TableName": "T", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                     "BillingMode": "PAY_PER_REQUEST"}),
    ("DeleteTable", {"TableName": ARN + "Music"}),
    ("RestoreTableFromBackup", {"TargetTableName": "T", "BackupArn": "arn:aws:dynamodb:us-east-1:1:table/T/backup/1"}),
    ("ImportTable", {"TableCreationParameters": {"TableName": "Imported"}}),
    ("DescribeEndpoints", {}),
    ("DescribeTable", {"TableName": "T"}),
    ("ListTables", {"Limit": 10}),
]

def write(target, op_byte, body, tag):
    data = bytes([op_byte]) + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    d = os.path.join(here, "..", "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = "seed-%s-%s" % (tag, hashlib.sha1(data).hexdigest()[:12])
    open(os.path.join(d, name), "wb").write(data)

for op, body in seeds:
    write("decode_plan", ops.index(op), body, op)
    if op in ("GetItem", "Query", "Scan"):
        write("canonical_key", ["GetItem", "Query", "Scan"].index(op), body, op)
    elif "TableName" in body:
        # Other bodies exercise the key builder too, as a Query.
        write("canonical_key", 1, body, op)
print("seeded", len(seeds), "requests")
