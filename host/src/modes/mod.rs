//! How salve runs: the batch core that every queue-driven mode shares, and the AWS Lambda mode.

pub mod batch;
pub mod lambda;
