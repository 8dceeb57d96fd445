//! The daemon's HTTP endpoint for orchestrators and scrapers: `GET /healthz` (200 while serving,
//! 503 once shutdown has begun, so a load balancer stops counting on it) and `GET /metrics`
//! (Prometheus text). It serves nothing else and reads no request body.

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::daemon::Health;
use crate::metrics::Metrics;

/// Binds the endpoint; call [`serve`] on the result. Binding first lets the caller report a
/// taken port before the daemon starts receiving.
pub async fn bind(address: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the status endpoint on {address}"))
}

/// Connections served at once; more wait in the kernel's backlog. Scrapers and probes need a
/// handful, and the daemon's own SQS connections need the file descriptors.
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this long.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// A connection is closed after this long, whatever it is doing.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves until the task is dropped. Half-open or slow clients cannot starve the daemon: each
/// connection has a header and a total deadline, at most [`MAX_CONNECTIONS`] are served at
/// once, and accept errors (out of file descriptors) back off instead of spinning.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = std::time::Duration::from_millis(10);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = std::time::Duration::from_millis(10);
                stream
            }
            Err(e) => {
                tracing::warn!("status endpoint: accept failed ({e}); backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                continue;
            }
        };
        let metrics = metrics.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = answer(&request, &metrics, &health);
                    async move { Ok::<_, Infallible>(response) }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn answer<B>(request: &Request<B>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => match health.problem() {
            None => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Some(p) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{p}\n"),
            ),
        },
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}
