// The real-client scenario with the AWS SDK for JavaScript v3.
// Env: DDBCACHE_ENDPOINT (http://host:port), DDBCACHE_TABLE.

import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DeleteTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";

const TableName = process.env.DDBCACHE_TABLE;
const Key = { pk: { S: "user#1" }, sk: { S: "profile" } };

function check(cond, step, got) {
  if (!cond) {
    console.error(`js scenario FAILED at ${step}: got ${JSON.stringify(got)}`);
    process.exit(1);
  }
  console.log(`ok: ${step}`);
}

const ddb = new DynamoDBClient({
  endpoint: process.env.DDBCACHE_ENDPOINT,
  region: "us-east-1",
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
  maxAttempts: 1,
});

const get = async () => (await ddb.send(new GetItemCommand({ TableName, Key }))).Item;
const query = async () =>
  (
    await ddb.send(
      new QueryCommand({
        TableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": { S: "user#1" } },
      }),
    )
  ).Items;

// 1. create table and wait for it
await ddb.send(
  new CreateTableCommand({
    TableName,
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    AttributeDefinitions: [
      { AttributeName: "pk", AttributeType: "S" },
      { AttributeName: "sk", AttributeType: "S" },
    ],
    BillingMode: "PAY_PER_REQUEST",
  }),
);
const waited = await waitUntilTableExists({ client: ddb, minDelay: 1, maxWaitTime: 60 }, { TableName });
check(waited.state === "SUCCESS", "1 create table", waited);

// 2. put
await ddb.send(new PutItemCommand({ TableName, Item: { ...Key, name: { S: "Ada" }, n: { N: "1" } } }));
console.log("ok: 2 put item");

// 3. get twice (the second is served from the proxy's cache)
for (const i of [1, 2]) {
  const item = await get();
  check(item?.name?.S === "Ada" && item?.n?.N === "1", `3 get #${i}`, item);
}

// 4. query
let items = await query();
check(items.length === 1 && items[0].name.S === "Ada", "4 query", items);

// 5. update
await ddb.send(
  new UpdateItemCommand({
    TableName,
    Key,
    UpdateExpression: "SET #n = :v",
    ExpressionAttributeNames: { "#n": "name" },
    ExpressionAttributeValues: { ":v": { S: "Grace" } },
  }),
);
console.log("ok: 5 update item");

// 6. get sees the update (the cached item was invalidated)
let item = await get();
check(item?.name?.S === "Grace", "6 get after update", item);

// 7. query sees the update
items = await query();
check(items.length === 1 && items[0].name.S === "Grace", "7 query after update", items);

// 8. delete
await ddb.send(new DeleteItemCommand({ TableName, Key }));
console.log("ok: 8 delete item");

// 9. get and query see nothing
item = await get();
check(item === undefined, "9 get after delete", item);
items = await query();
check(items.length === 0, "9 query after delete", items);

// 10. conditional put on an existing item fails
await ddb.send(new PutItemCommand({ TableName, Item: { ...Key, name: { S: "Ada" } } }));
try {
  await ddb.send(
    new PutItemCommand({
      TableName,
      Item: { ...Key, name: { S: "Mallory" } },
      ConditionExpression: "attribute_not_exists(pk)",
    }),
  );
  check(false, "10 conditional put", "success on an existing item");
} catch (e) {
  const ok = e instanceof ConditionalCheckFailedException && e.name === "ConditionalCheckFailedException";
  check(ok, "10 conditional put", { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode });
}
item = await get();
check(item?.name?.S === "Ada", "10 item unchanged", item);

// 11. delete table
await ddb.send(new DeleteTableCommand({ TableName }));
console.log("ok: 11 delete table");
console.log("js scenario passed");
