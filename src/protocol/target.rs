//! `X-Amz-Target: DynamoDB_20120810.<Op>` -> [`Operation`].
//!
//! Only operations DynamoDB has are accepted: a proxy that forwarded an operation it does not
//! understand could not promise cache coherence for it. DynamoDB Streams operations
//! (`DynamoDBStreams_20120810.*`, served on the same port by local engines) pass through.

use crate::error::Error;

macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// Every DynamoDB API operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($name,)*
            /// A `DynamoDBStreams_20120810.*` operation; always passed through.
            Streams(StreamsOperation),
        }

        impl Operation {
            /// Every `DynamoDB_20120810.*` operation, in name order (the fuzz targets pick one
            /// from an input byte, so operations added here are fuzzed too).
            pub const ALL: &[Operation] = &[$(Operation::$name,)*];

            /// The operation's name, as in `X-Amz-Target` and in metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name),)*
                    Operation::Streams(s) => s.as_str(),
                }
            }

            fn from_dynamodb_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($name) => Some(Operation::$name),)*
                    _ => None,
                }
            }
        }
    };
}

operations!(
    BatchExecuteStatement,
    BatchGetItem,
    BatchWriteItem,
    CreateBackup,
    CreateGlobalTable,
    CreateTable,
    DeleteBackup,
    DeleteItem,
    DeleteResourcePolicy,
    DeleteTable,
    DescribeBackup,
    DescribeContinuousBackups,
    DescribeContributorInsights,
    DescribeEndpoints,
    DescribeExport,
    DescribeGlobalTable,
    DescribeGlobalTableSettings,
    DescribeImport,
    DescribeKinesisStreamingDestination,
    DescribeLimits,
    DescribeTable,
    DescribeTableReplicaAutoScaling,
    DescribeTimeToLive,
    DisableKinesisStreamingDestination,
    EnableKinesisStreamingDestination,
    ExecuteStatement,
    ExecuteTransaction,
    ExportTableToPointInTime,
    GetItem,
    GetResourcePolicy,
    ImportTable,
    ListBackups,
    ListContributorInsights,
    ListExports,
    ListGlobalTables,
    ListImports,
    ListTables,
    ListTagsOfResource,
    PutItem,
    PutResourcePolicy,
    Query,
    RestoreTableFromBackup,
    RestoreTableToPointInTime,
    Scan,
    TagResource,
    TransactGetItems,
    TransactWriteItems,
    UntagResource,
    UpdateContinuousBackups,
    UpdateContributorInsights,
    UpdateGlobalTable,
    UpdateGlobalTableSettings,
    UpdateItem,
    UpdateKinesisStreamingDestination,
    UpdateTable,
    UpdateTableReplicaAutoScaling,
    UpdateTimeToLive,
);

/// The four DynamoDB Streams operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamsOperation {
    DescribeStream,
    GetRecords,
    GetShardIterator,
    ListStreams,
}

impl StreamsOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamsOperation::DescribeStream => "DescribeStream",
            StreamsOperation::GetRecords => "GetRecords",
            StreamsOperation::GetShardIterator => "GetShardIterator",
            StreamsOperation::ListStreams => "ListStreams",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "DescribeStream" => StreamsOperation::DescribeStream,
            "GetRecords" => StreamsOperation::GetRecords,
            "GetShardIterator" => StreamsOperation::GetShardIterator,
            "ListStreams" => StreamsOperation::ListStreams,
            _ => return None,
        })
    }
}

const DYNAMODB_PREFIX: &str = "DynamoDB_20120810.";
const STREAMS_PREFIX: &str = "DynamoDBStreams_20120810.";

/// Reads the `X-Amz-Target` header value (None when the header is absent).
pub fn parse_target(target: Option<&[u8]>) -> Result<Operation, Error> {
    let Some(raw) = target else {
        return Err(Error::UnknownOperation(
            "missing X-Amz-Target header".to_string(),
        ));
    };
    let text = std::str::from_utf8(raw).unwrap_or("");
    let op = if let Some(name) = text.strip_prefix(DYNAMODB_PREFIX) {
        Operation::from_dynamodb_name(name)
    } else if let Some(name) = text.strip_prefix(STREAMS_PREFIX) {
        StreamsOperation::from_name(name).map(Operation::Streams)
    } else {
        None
    };
    op.ok_or_else(|| {
        Error::UnknownOperation(format!(
            "unknown operation in X-Amz-Target: {:?}",
            String::from_utf8_lossy(raw)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_targets_parse() {
        let cases = [
            ("DynamoDB_20120810.GetItem", Operation::GetItem),
            ("DynamoDB_20120810.Query", Operation::Query),
            (
                "DynamoDB_20120810.TransactWriteItems",
                Operation::TransactWriteItems,
            ),
            (
                "DynamoDBStreams_20120810.GetRecords",
                Operation::Streams(StreamsOperation::GetRecords),
            ),
        ];
        for (target, op) in cases {
            assert_eq!(parse_target(Some(target.as_bytes())).unwrap(), op);
            assert_eq!(target.rsplit('.').next().unwrap(), op.as_str());
        }
    }

    #[test]
    fn all_lists_every_operation_once_and_each_parses_back() {
        assert_eq!(Operation::ALL.len(), 57);
        for (i, op) in Operation::ALL.iter().enumerate() {
            let target = format!("{DYNAMODB_PREFIX}{}", op.as_str());
            assert_eq!(parse_target(Some(target.as_bytes())).unwrap(), *op);
            assert!(!Operation::ALL[..i].contains(op), "{op:?} twice");
        }
    }

    #[test]
    fn unknown_targets_are_refused() {
        for bad in [
            "DynamoDB_20120810.Frobnicate",
            "DynamoDB_20120810.",
            "GetItem",
            "DynamoDB_20111205.GetItem",
            "dynamodb_20120810.GetItem",
            "DynamoDBStreams_20120810.GetItem",
        ] {
            let err = parse_target(Some(bad.as_bytes())).unwrap_err();
            assert!(matches!(err, Error::UnknownOperation(_)), "{bad}");
        }
        assert!(matches!(
            parse_target(None),
            Err(Error::UnknownOperation(_))
        ));
        assert!(parse_target(Some(&[0xff, 0xfe])).is_err());
    }
}
