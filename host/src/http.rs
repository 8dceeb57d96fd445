//! The one HTTPS client salve builds (webhooks, the GitHub API): rustls with the system's roots,
//! HTTP/1.1, plain http allowed only where the caller allows it.

use bytes::Bytes;
use http_body_util::Full;

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

pub type HttpsClient = hyper_util::client::legacy::Client<Connector, Full<Bytes>>;

/// A client for the calling runtime. The system's TLS roots are read and parsed once per
/// process (every webhook and forge call built them again before); the connection pool is
/// new for each client, because hyper binds a pool to the runtime that first used it.
pub fn https_client() -> Result<HttpsClient, String> {
    static CONNECTOR: std::sync::OnceLock<Result<Connector, String>> = std::sync::OnceLock::new();
    let connector = CONNECTOR
        .get_or_init(|| {
            Ok(hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("loading the system's TLS roots: {e}"))?
                .https_or_http()
                .enable_http1()
                .build())
        })
        .clone()?;
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}
