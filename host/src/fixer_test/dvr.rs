//! Recorded AWS traffic in the smithy DVR JSON format (`NetworkTraffic`: events of a request,
//! its body, a response and its body, per connection), and two HTTP clients that plug into the
//! SDK where its HTTPS client would go:
//!
//! - [`ReplayingClient`] answers every request from a recording, in order, and refuses any
//!   request the recording does not hold, remembering how it differed;
//! - [`RecordingClient`] forwards to a real client and keeps both bodies. The SDK's own recorder
//!   drops request bodies (smithy-rs issue 4495), and for query-protocol services (STS, EC2) the
//!   body is the request.
//!
//! What is written is scrubbed first: signatures, session tokens, access keys, secrets and the
//! external ID never reach a recording. Requests are compared after the same scrubbing, so a
//! replay never needs them.

use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use serde::{Deserialize, Serialize};

/// The recording file, field for field the smithy DVR format (version `V0`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkTraffic {
    pub events: Vec<Event>,
    pub docs: Option<String>,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub connection_id: usize,
    pub action: Action,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Action {
    Request {
        request: RecordedRequest,
    },
    Response {
        response: ResponseOrError,
    },
    Data {
        data: BodyData,
        direction: Direction,
    },
    Eof {
        ok: bool,
        direction: Direction,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedRequest {
    pub uri: String,
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
    pub method: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ResponseOrError {
    Ok(RecordedResponse),
    Err(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedResponse {
    pub status: u16,
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum BodyData {
    Utf8(String),
    Base64(String),
}

impl BodyData {
    fn from_bytes(bytes: &[u8]) -> BodyData {
        match std::str::from_utf8(bytes) {
            Ok(s) => BodyData::Utf8(s.to_string()),
            Err(_) => BodyData::Base64(base64::encode(bytes)),
        }
    }

    fn to_bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            BodyData::Utf8(s) => Ok(s.clone().into_bytes()),
            BodyData::Base64(s) => base64::decode(s),
        }
    }
}

/// One request and its answer, as the harness compares and replays them.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub method: String,
    pub uri: String,
    pub request_headers: std::collections::BTreeMap<String, Vec<String>>,
    pub request_body: String,
    pub response: Result<(RecordedResponse, Vec<u8>), String>,
}

impl NetworkTraffic {
    /// Groups the events into exchanges, in the order their requests were made.
    pub fn exchanges(&self) -> Result<Vec<Exchange>, String> {
        let mut by_connection: std::collections::BTreeMap<usize, Exchange> = Default::default();
        let mut order = Vec::new();
        for event in &self.events {
            let id = event.connection_id;
            match &event.action {
                Action::Request { request } => {
                    order.push(id);
                    by_connection.insert(
                        id,
                        Exchange {
                            method: request.method.clone(),
                            uri: request.uri.clone(),
                            request_headers: request.headers.clone(),
                            request_body: String::new(),
                            response: Err("the recording has no response".into()),
                        },
                    );
                }
                Action::Data { data, direction } => {
                    let exchange = by_connection
                        .get_mut(&id)
                        .ok_or_else(|| format!("data for connection {id} before its request"))?;
                    let bytes = data.to_bytes()?;
                    match direction {
                        Direction::Request => {
                            exchange.request_body += &String::from_utf8_lossy(&bytes)
                        }
                        Direction::Response => {
                            if let Ok((_, body)) = &mut exchange.response {
                                body.extend_from_slice(&bytes);
                            }
                        }
                    }
                }
                Action::Response { response } => {
                    let exchange = by_connection.get_mut(&id).ok_or_else(|| {
                        format!("a response for connection {id} before its request")
                    })?;
                    exchange.response = match response {
                        ResponseOrError::Ok(r) => Ok((r.clone(), Vec::new())),
                        ResponseOrError::Err(e) => Err(e.clone()),
                    };
                }
                Action::Eof { .. } => {}
            }
        }
        Ok(order
            .into_iter()
            .filter_map(|id| by_connection.remove(&id))
            .collect())
    }

    pub fn from_exchanges(exchanges: &[Exchange], docs: Option<String>) -> NetworkTraffic {
        let mut events = Vec::new();
        for (id, e) in exchanges.iter().enumerate() {
            let push = |events: &mut Vec<Event>, action| {
                events.push(Event {
                    connection_id: id,
                    action,
                })
            };
            push(
                &mut events,
                Action::Request {
                    request: RecordedRequest {
                        uri: e.uri.clone(),
                        headers: e.request_headers.clone(),
                        method: e.method.clone(),
                    },
                },
            );
            if !e.request_body.is_empty() {
                push(
                    &mut events,
                    Action::Data {
                        data: BodyData::Utf8(e.request_body.clone()),
                        direction: Direction::Request,
                    },
                );
            }
            push(
                &mut events,
                Action::Eof {
                    ok: true,
                    direction: Direction::Request,
                },
            );
            match &e.response {
                Ok((response, body)) => {
                    push(
                        &mut events,
                        Action::Response {
                            response: ResponseOrError::Ok(response.clone()),
                        },
                    );
                    if !body.is_empty() {
                        push(
                            &mut events,
                            Action::Data {
                                data: BodyData::from_bytes(body),
                                direction: Direction::Response,
                            },
                        );
                    }
                    push(
                        &mut events,
                        Action::Eof {
                            ok: true,
                            direction: Direction::Response,
                        },
                    );
                }
                Err(error) => push(
                    &mut events,
                    Action::Response {
                        response: ResponseOrError::Err(error.clone()),
                    },
                ),
            }
        }
        NetworkTraffic {
            events,
            docs,
            version: "V0".into(),
        }
    }
}

/// Request headers worth keeping: what says what the request is. Everything else is either a
/// signature, a token, or differs on every run (dates, invocation IDs, user agents).
const KEPT_REQUEST_HEADERS: &[&str] = &["content-type", "x-amz-target"];
/// Response headers that may carry something secret.
const DROPPED_RESPONSE_HEADERS: &[&str] = &["set-cookie", "x-amz-security-token", "authorization"];

/// XML elements whose text is secret in STS answers.
const SECRET_ELEMENTS: &[(&str, &str)] = &[
    ("AccessKeyId", "SCRUBBED-ACCESS-KEY-ID"),
    ("SecretAccessKey", "scrubbed-secret-access-key"),
    ("SessionToken", "scrubbed-session-token"),
];
/// Form fields (query protocol requests) whose value is secret.
const SECRET_FORM_FIELDS: &[&str] = &["ExternalId"];

/// Removes secrets from a body: STS credentials in XML and JSON, the external ID in a form, and
/// any string that looks like an AWS access key ID.
pub fn scrub_body(body: &str) -> String {
    let mut out = body.to_string();
    for (element, placeholder) in SECRET_ELEMENTS {
        out = replace_between(
            &out,
            &format!("<{element}>"),
            &format!("</{element}>"),
            placeholder,
        );
        out = replace_between(&out, &format!("\"{element}\":\""), "\"", placeholder);
        out = replace_between(&out, &format!("\"{element}\": \""), "\"", placeholder);
    }
    for field in SECRET_FORM_FIELDS {
        out = replace_between(&out, &format!("{field}="), "&", "scrubbed");
        if let Some(start) = out.find(&format!("{field}=")) {
            // The field may be the last one, with no `&` after it.
            let value_start = start + field.len() + 1;
            if !out[value_start..].contains('&') {
                out.replace_range(value_start.., "scrubbed");
            }
        }
    }
    scrub_access_key_ids(&out)
}

fn replace_between(text: &str, open: &str, close: &str, placeholder: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let value_start = start + open.len();
        out.push_str(&rest[..value_start]);
        match rest[value_start..].find(close) {
            Some(len) => {
                out.push_str(placeholder);
                rest = &rest[value_start + len..];
            }
            None => {
                rest = &rest[value_start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `AKIA…`/`ASIA…` followed by 16 upper-case letters or digits: an access key ID.
fn scrub_access_key_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let is_key = i + 20 <= bytes.len()
            && (bytes[i..].starts_with(b"AKIA") || bytes[i..].starts_with(b"ASIA"))
            && bytes[i + 4..i + 20]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if is_key {
            out.push_str("SCRUBBED-ACCESS-KEY-ID");
            i += 20;
        } else {
            let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8().max(1);
        }
    }
    out
}

fn kept_request_headers(request: &HttpRequest) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in request.headers() {
        let name = name.to_ascii_lowercase();
        if KEPT_REQUEST_HEADERS.contains(&name.as_str()) {
            out.entry(name).or_default().push(value.to_string());
        }
    }
    out
}

fn request_body(request: &HttpRequest) -> String {
    match request.body().bytes() {
        Some(bytes) => scrub_body(&String::from_utf8_lossy(bytes)),
        None => "<streaming body>".to_string(),
    }
}

/// A request that is not the next one in the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// 1-based position of the request.
    pub position: usize,
    pub expected: Option<(String, String, String)>,
    pub actual: (String, String, String),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, uri, body) = &self.actual;
        match &self.expected {
            None => write!(
                f,
                "request {} is not in the recording (it holds {} request(s)):\n  actual:   {method} {uri}\n            body: {}",
                self.position,
                self.position - 1,
                shown(body)
            ),
            Some((e_method, e_uri, e_body)) => write!(
                f,
                "request {} differs from the recording:\n  expected: {e_method} {e_uri}\n            body: {}\n  actual:   {method} {uri}\n            body: {}",
                self.position,
                shown(e_body),
                shown(body)
            ),
        }
    }
}

fn shown(body: &str) -> String {
    if body.is_empty() {
        "(empty)".into()
    } else {
        body.to_string()
    }
}

#[derive(Debug, Default)]
struct ReplayState {
    exchanges: Vec<Exchange>,
    next: usize,
    mismatch: Option<Mismatch>,
}

/// Answers the SDK from a recording. Never touches the network.
#[derive(Debug, Clone)]
pub struct ReplayingClient {
    state: Arc<Mutex<ReplayState>>,
}

impl ReplayingClient {
    pub fn new(traffic: &NetworkTraffic) -> Result<ReplayingClient, String> {
        Ok(ReplayingClient {
            state: Arc::new(Mutex::new(ReplayState {
                exchanges: traffic.exchanges()?,
                ..ReplayState::default()
            })),
        })
    }

    /// The first request that did not match, if any.
    pub fn mismatch(&self) -> Option<Mismatch> {
        self.lock().mismatch.clone()
    }

    /// Recorded exchanges never asked for.
    pub fn unused(&self) -> Vec<String> {
        let state = self.lock();
        state.exchanges[state.next.min(state.exchanges.len())..]
            .iter()
            .map(|e| format!("{} {}", e.method, e.uri))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReplayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(&self, request: &HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let actual = (
            request.method().to_string(),
            request.uri().to_string(),
            request_body(request),
        );
        let mut state = self.lock();
        let position = state.next + 1;
        let refuse = |state: &mut ReplayState, expected| {
            let mismatch = Mismatch {
                position,
                expected,
                actual: actual.clone(),
            };
            let message = mismatch.to_string();
            if state.mismatch.is_none() {
                state.mismatch = Some(mismatch);
            }
            Err(ConnectorError::other(message.into(), None))
        };
        let Some(recorded) = state.exchanges.get(state.next).cloned() else {
            return refuse(&mut state, None);
        };
        let expected = (
            recorded.method.clone(),
            recorded.uri.clone(),
            recorded.request_body.clone(),
        );
        if expected != actual {
            return refuse(&mut state, Some(expected));
        }
        state.next += 1;
        match recorded.response {
            Ok((head, body)) => {
                let status = head.status.try_into().map_err(|e| {
                    ConnectorError::other(
                        format!("recorded status {}: {e}", head.status).into(),
                        None,
                    )
                })?;
                let mut response = HttpResponse::new(status, SdkBody::from(body));
                for (name, values) in head.headers {
                    for value in values {
                        response.headers_mut().append(name.clone(), value);
                    }
                }
                Ok(response)
            }
            Err(e) => Err(ConnectorError::io(e.into())),
        }
    }
}

impl HttpConnector for ReplayingClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(self.answer(&request))
    }
}

impl HttpClient for ReplayingClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// Forwards to a real client and keeps every exchange, bodies included, scrubbed.
#[derive(Debug, Clone)]
pub struct RecordingClient {
    inner: SharedHttpClient,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl RecordingClient {
    pub fn new(inner: SharedHttpClient) -> RecordingClient {
        RecordingClient {
            inner,
            exchanges: Arc::default(),
        }
    }

    pub fn traffic(&self, docs: Option<String>) -> NetworkTraffic {
        let exchanges = self.exchanges.lock().unwrap_or_else(|p| p.into_inner());
        NetworkTraffic::from_exchanges(&exchanges, docs)
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let request_headers = kept_request_headers(&request);
        let body = request_body(&request);
        // Reserve the slot now, so the recording keeps the order requests were made in.
        let slot = {
            let mut exchanges = self.exchanges.lock().unwrap_or_else(|p| p.into_inner());
            exchanges.push(Exchange {
                method,
                uri,
                request_headers,
                request_body: body,
                response: Err("no response yet".into()),
            });
            exchanges.len() - 1
        };
        let inner = self.inner.call(request);
        let exchanges = self.exchanges.clone();
        HttpConnectorFuture::new(async move {
            let result = inner.await;
            let (recorded, response) = match result {
                Ok(mut response) => {
                    let body = http_body_util::BodyExt::collect(response.take_body())
                        .await
                        .map(|c| c.to_bytes().to_vec())
                        .map_err(ConnectorError::io)?;
                    let mut headers: std::collections::BTreeMap<String, Vec<String>> =
                        Default::default();
                    for (name, value) in response.headers() {
                        let name = name.to_ascii_lowercase();
                        if !DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
                            headers.entry(name).or_default().push(value.to_string());
                        }
                    }
                    let scrubbed = scrub_body(&String::from_utf8_lossy(&body)).into_bytes();
                    // Scrubbing changes the length; the recording must agree with its own body.
                    if let Some(length) = headers.get_mut("content-length") {
                        *length = vec![scrubbed.len().to_string()];
                    }
                    let head = RecordedResponse {
                        status: response.status().as_u16(),
                        headers,
                    };
                    *response.body_mut() = SdkBody::from(body);
                    (Ok((head, scrubbed)), Ok(response))
                }
                Err(e) => (Err(format!("{e}")), Err(e)),
            };
            let mut all = exchanges.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = all.get_mut(slot) {
                slot.response = recorded;
            }
            response
        })
    }
}

impl HttpClient for RecordingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            exchanges: self.exchanges.clone(),
        })
    }
}

/// Standard base64, for binary bodies (which AWS APIs the fixers use do not send).
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let mut acc = 0u32;
        let mut bits = 0;
        for c in text
            .bytes()
            .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        {
            let v = ALPHABET
                .iter()
                .position(|a| *a == c)
                .ok_or_else(|| format!("{:?} is not base64", c as char))?
                as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        let sts = "<Credentials><AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey><SessionToken>FQoGZXIvYXdzE</SessionToken></Credentials>";
        assert_eq!(
            scrub_body(sts),
            "<Credentials><AccessKeyId>SCRUBBED-ACCESS-KEY-ID</AccessKeyId><SecretAccessKey>scrubbed-secret-access-key</SecretAccessKey><SessionToken>scrubbed-session-token</SessionToken></Credentials>"
        );
        assert_eq!(
            scrub_body("Action=AssumeRole&ExternalId=s3cret&Version=2011-06-15"),
            "Action=AssumeRole&ExternalId=scrubbed&Version=2011-06-15"
        );
        assert_eq!(
            scrub_body("Version=2011-06-15&ExternalId=s3cret"),
            "Version=2011-06-15&ExternalId=scrubbed"
        );
        assert_eq!(
            scrub_body("owner AKIAIOSFODNN7EXAMPLE here"),
            "owner SCRUBBED-ACCESS-KEY-ID here"
        );
    }

    #[test]
    fn base64_round_trips() {
        for input in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"\xff\x00\x10binary",
        ] {
            assert_eq!(base64::decode(&base64::encode(input)).unwrap(), input);
        }
        assert_eq!(base64::encode(b"foobar"), "Zm9vYmFy");
    }
}
