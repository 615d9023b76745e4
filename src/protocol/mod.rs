//! The DynamoDB JSON 1.0 wire protocol: operations named by `X-Amz-Target`, and responses.

pub mod json;
pub mod response;
pub mod target;

pub use response::{Reply, request_id};
pub use target::{Operation, parse_target};

/// The JSON 1.0 content type every AWS SDK sends.
pub const AMZ_JSON: &str = "application/x-amz-json-1.0";
