//! A forwarding HTTP proxy between salve and moto. It sees every AWS call a salve process makes
//! (so a test can count the writes that really reached AWS, whatever the audit log says), and
//! can answer chosen calls with an injected fault instead of forwarding them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    /// The `x-amz-target` header: the operation, for JSON-protocol services such as SQS.
    pub target: String,
    pub body: String,
    /// Every header, names lower-case.
    pub headers: Vec<(String, String)>,
}

/// What to do to a request instead of forwarding it at once.
pub enum Injected {
    /// Answer with this status and body; moto never sees the request.
    Respond(u16, String),
    /// Forward it after this long.
    Delay(std::time::Duration),
    /// Forward it (so the change lands), then answer with this status and body instead of the
    /// real response: a response lost on the way back.
    ForwardThenRespond(u16, String),
}

/// An injected answer, named like AWS names its own.
fn injected_response(status: u16, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_static("injected-fault"),
    );
    response
}

pub type FaultRule = Arc<dyn Fn(&Seen) -> Option<Injected> + Send + Sync>;

pub struct CountingProxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    fault: Arc<Mutex<Option<FaultRule>>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> CountingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let fault: Arc<Mutex<Option<FaultRule>>> = Arc::default();
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let upstream = upstream.trim_end_matches('/').to_string();
        let (seen2, fault2) = (seen.clone(), fault.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, upstream, seen, fault) = (
                    client.clone(),
                    upstream.clone(),
                    seen2.clone(),
                    fault2.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let (client, upstream, seen, fault) = (
                                client.clone(),
                                upstream.clone(),
                                seen.clone(),
                                fault.clone(),
                            );
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let request_seen = Seen {
                                    method: parts.method.to_string(),
                                    path_and_query: parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    target: parts
                                        .headers
                                        .get("x-amz-target")
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_string(),
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_string(),
                                                v.to_str().unwrap_or_default().to_string(),
                                            )
                                        })
                                        .collect(),
                                };
                                seen.lock().unwrap().push(request_seen.clone());
                                let injected = fault
                                    .lock()
                                    .unwrap()
                                    .as_ref()
                                    .and_then(|f| f(&request_seen));
                                let mut replace_with = None;
                                if let Some(Injected::ForwardThenRespond(status, text)) = injected {
                                    replace_with = Some((status, text));
                                } else if let Some(Injected::Delay(d)) = injected {
                                    tokio::time::sleep(d).await;
                                } else if let Some(Injected::Respond(status, text)) = injected {
                                    return Ok::<_, Infallible>(injected_response(status, text));
                                }
                                let uri = format!("{upstream}{}", request_seen.path_and_query);
                                let mut forward = Request::builder().method(parts.method).uri(uri);
                                for (name, value) in &parts.headers {
                                    forward = forward.header(name, value);
                                }
                                let forward = forward.body(Full::new(body)).unwrap();
                                let forwarded = client.request(forward).await;
                                if let Some((status, text)) = replace_with {
                                    return Ok::<_, Infallible>(injected_response(status, text));
                                }
                                let response = match forwarded {
                                    Ok(r) => {
                                        let (parts, body) = r.into_parts();
                                        let body = body
                                            .collect()
                                            .await
                                            .map(|b| b.to_bytes())
                                            .unwrap_or_default();
                                        Response::from_parts(parts, Full::new(body))
                                    }
                                    Err(e) => {
                                        let mut r = Response::new(Full::new(Bytes::from(format!(
                                            "proxy: {e}"
                                        ))));
                                        *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                                        r
                                    }
                                };
                                Ok::<_, Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CountingProxy { url, seen, fault }
    }

    pub fn set_fault(&self, rule: Option<FaultRule>) {
        *self.fault.lock().unwrap() = rule;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
