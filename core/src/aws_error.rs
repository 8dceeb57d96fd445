//! SDK errors as the contract's `aws-error`: the code, message and request ID the audit log keeps,
//! and whether the queue should retry.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

use crate::AwsError;

/// Error codes AWS uses for throttling; the queue retries these later.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// `code: message (request ID …)`, the way records and reasons name an AWS error.
pub fn describe_aws_error(e: &AwsError) -> String {
    let id = e
        .request_id
        .as_deref()
        .map(|r| format!(" (request ID {r})"))
        .unwrap_or_default();
    format!("{}: {}{id}", e.code, e.message)
}

/// Converts any SDK error into the WIT error, keeping the code and request ID for the audit log.
pub fn to_aws_error<E>(err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request_id = err.request_id().map(str::to_string);
    let status = match &err {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    let (code, message, retryable) = match &err {
        SdkError::TimeoutError(_) => (
            "Timeout".to_string(),
            "the request timed out".to_string(),
            true,
        ),
        SdkError::DispatchFailure(d) => (
            "DispatchFailure".to_string(),
            format!("the request could not be sent: {d:?}"),
            true,
        ),
        SdkError::ResponseError(_) => (
            "ResponseError".to_string(),
            "the response could not be read".to_string(),
            true,
        ),
        SdkError::ConstructionFailure(_) => (
            "ConstructionFailure".to_string(),
            "the request could not be built".to_string(),
            false,
        ),
        _ => {
            let code = err.code().unwrap_or("Unknown").to_string();
            let message = err.message().unwrap_or("").to_string();
            let retryable = THROTTLING_CODES.contains(&code.as_str())
                || code.starts_with("Internal")
                || code == "ServiceUnavailable"
                || status.is_some_and(|s| s >= 500);
            (code, message, retryable)
        }
    };
    AwsError {
        code,
        message,
        request_id,
        retryable,
    }
}

/// An error of the host's own making, in the shape a fixer receives AWS errors in.
pub fn internal_error(message: &str) -> AwsError {
    AwsError {
        code: "InternalError".into(),
        message: message.into(),
        request_id: None,
        retryable: false,
    }
}

/// A describe call that succeeded without the one resource it asked for (deleted since the
/// finding, or never there), as the service itself would have said it: `code` is the service's
/// own not-found code, so retry and rollback logic treat both alike.
pub(crate) fn not_in_response(code: &str, what: &str) -> AwsError {
    AwsError {
        code: code.into(),
        message: format!("{what} was not in the response"),
        request_id: None,
        retryable: false,
    }
}
