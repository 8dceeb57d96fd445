//! How salve runs: the batch core that every queue-driven mode shares, the AWS Lambda mode, the
//! SQS daemon with its status endpoint, and dead-letter replay.

pub mod batch;
pub mod daemon;
pub mod lambda;
pub mod lambda_init_error;
pub mod replay;
pub mod status_endpoint;
