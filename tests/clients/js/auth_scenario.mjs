// Client authentication with the AWS SDK for JavaScript v3: the proxy verifies its SigV4
// signatures. Keys: test/test (everything), reader/reader-secret (the scenario's table; GetItem,
// Query and DescribeTable only).
// Env: DDBCACHE_ENDPOINT (http://host:port), DDBCACHE_TABLE.

import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  QueryCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";

const TableName = process.env.DDBCACHE_TABLE;
const Key = { pk: { S: "user#1" }, sk: { S: "profile" } };

function check(cond, step, got) {
  if (!cond) {
    console.error(`js auth scenario FAILED at ${step}: got ${JSON.stringify(got)}`);
    process.exit(1);
  }
  console.log(`ok: ${step}`);
}

const client = (accessKeyId, secretAccessKey) =>
  new DynamoDBClient({
    endpoint: process.env.DDBCACHE_ENDPOINT,
    region: "us-east-1",
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });

async function errorName(step, call) {
  try {
    await call();
  } catch (e) {
    return e.name;
  }
  check(false, step, "succeeded, expected a refusal");
}

const admin = client("test", "test");
const reader = client("reader", "reader-secret");

await admin.send(
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
await waitUntilTableExists({ client: admin, maxWaitTime: 60, minDelay: 1 }, { TableName });
await admin.send(new PutItemCommand({ TableName, Item: { ...Key, name: { S: "Ada" } } }));
console.log("ok: 1 admin creates and puts");

for (const i of [1, 2]) {
  const item = (await reader.send(new GetItemCommand({ TableName, Key }))).Item;
  check(item?.name?.S === "Ada", `2 reader get #${i}`, item);
}
const items = (
  await reader.send(
    new QueryCommand({
      TableName,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": { S: "user#1" } },
    }),
  )
).Items;
check(items.length === 1, "2 reader query", items);

let name = await errorName("3 reader put", () =>
  reader.send(new PutItemCommand({ TableName, Item: { ...Key, name: { S: "Eve" } } })),
);
check(name === "AccessDeniedException", "3 reader put", name);
name = await errorName("3 reader list", () => reader.send(new ListTablesCommand({})));
check(name === "AccessDeniedException", "3 reader list", name);

name = await errorName("4 wrong secret", () =>
  client("reader", "not-the-secret").send(new GetItemCommand({ TableName, Key })),
);
check(name === "InvalidSignatureException", "4 wrong secret", name);
name = await errorName("4 unknown key", () =>
  client("nobody", "x").send(new GetItemCommand({ TableName, Key })),
);
check(name === "UnrecognizedClientException", "4 unknown key", name);

const after = (await admin.send(new GetItemCommand({ TableName, Key, ConsistentRead: true }))).Item;
check(after?.name?.S === "Ada", "5 item unchanged", after);
