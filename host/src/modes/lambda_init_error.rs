//! Reports a failed init to the Lambda Runtime API (`/runtime/init/error`), so the failure is in
//! the function's own error reporting with its reason, instead of a process that exited.

use bytes::Bytes;
use http_body_util::Full;

/// Posts `message` as the init error when running under a Runtime API; does nothing otherwise.
/// A failure to report is logged: the process exits with the error either way.
pub async fn report(message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    tracing::error!("init failed: {message}");
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": "Salve.InitError",
    })
    .to_string();
    // cargo-lambda's emulator gives a URL (`http://[::]:9000/.rt`); AWS gives `host:port`.
    let base = if api.starts_with("http://") {
        api.trim_end_matches('/').to_string()
    } else {
        format!("http://{api}")
    };
    let request = hyper::Request::post(format!("{base}/2018-06-01/runtime/init/error"))
        .header("content-type", "application/json")
        .header("Lambda-Runtime-Function-Error-Type", "Salve.InitError")
        .body(Full::new(Bytes::from(body)));
    let Ok(request) = request else {
        tracing::error!("could not build the init error report");
        return;
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    match tokio::time::timeout(std::time::Duration::from_secs(5), client.request(request)).await {
        Ok(Ok(r)) if r.status().is_success() => {}
        Ok(Ok(r)) => tracing::error!("the Runtime API answered {} to the init error", r.status()),
        Ok(Err(e)) => tracing::error!("could not report the init error: {e}"),
        Err(_) => tracing::error!("reporting the init error timed out"),
    }
}
