//! Envelopes: the wrappers a finding travels in between its sender and salve.
//!
//! Unwrapping is iterative over a bounded depth, so a hostile payload cannot nest its way into
//! a stack overflow, and every message it yields carries the path it was found at.

use serde_json::Value;

/// How deep envelopes may nest. Real deliveries need at most four (Lambda SQS event → SNS
/// notification → EventBridge event → finding batch).
const MAX_DEPTH: usize = 6;
/// SQS's own message size limit; a body larger than this did not come through SQS.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// A Lambda SQS batch holds at most 10 000 records; anything larger is not one.
const MAX_RECORDS: usize = 10_000;

/// One message found inside a payload: where it was found, and either its JSON or why it is
/// unusable.
#[derive(Debug)]
pub struct Unwrapped {
    pub envelope: Vec<String>,
    pub body: Result<Value, String>,
}

fn parse_embedded(text: &str, what: &str) -> Result<Value, String> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "{what} is {} bytes, over the {MAX_MESSAGE_BYTES}-byte message limit",
            text.len()
        ));
    }
    super::parse_strict(text.as_bytes()).map_err(|e| format!("{what} is not JSON: {e}"))
}

/// What one layer of wrapping turned out to be.
enum Layer {
    /// Not an envelope: this is the message itself.
    Leaf(Value),
    /// An envelope holding these messages, each with its path segment.
    Wrapped(Vec<(String, Result<Value, String>)>),
    Unusable(String),
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn peel(value: Value) -> Layer {
    if let Value::String(text) = &value {
        // Some senders encode the JSON twice; the string form is the message.
        return Layer::Wrapped(vec![(
            "json-string".into(),
            parse_embedded(text, "a JSON string message"),
        )]);
    }
    let Value::Object(map) = &value else {
        return Layer::Leaf(value);
    };
    if let Some(records) = map.get("Records") {
        return peel_records(records);
    }
    if let Some(kind) = str_field(&value, "Type") {
        if map.contains_key("TopicArn") {
            return match (kind, str_field(&value, "Message")) {
                ("Notification", Some(message)) => Layer::Wrapped(vec![(
                    "sns-notification".into(),
                    parse_embedded(message, "the SNS notification's Message"),
                )]),
                ("Notification", None) => {
                    Layer::Unusable("SNS notification without a Message string".into())
                }
                (other, _) => Layer::Unusable(format!(
                    "SNS message of type {other:?} is not a notification; salve never confirms subscriptions itself"
                )),
            };
        }
    }
    if let Some(messages) = map.get("Messages").and_then(Value::as_array) {
        return Layer::Wrapped(
            messages
                .iter()
                .take(MAX_RECORDS)
                .enumerate()
                .map(|(i, m)| {
                    let body = match str_field(m, "Body") {
                        Some(b) => parse_embedded(b, &format!("Messages[{i}].Body")),
                        None => Err(format!("Messages[{i}] has no Body string")),
                    };
                    (format!("sqs-message[{i}]"), body)
                })
                .collect(),
        );
    }
    if map.contains_key("MessageId") && map.contains_key("ReceiptHandle") {
        let body = match str_field(&value, "Body") {
            Some(b) => parse_embedded(b, "the SQS message Body"),
            None => Err("SQS message without a Body string".into()),
        };
        return Layer::Wrapped(vec![("sqs-message".into(), body)]);
    }
    if map.contains_key("detail-type") && map.contains_key("detail") {
        // Security Hub's EventBridge event is itself the message (its `detail.findings` is a
        // batch); any other EventBridge event carries its message in `detail`.
        if str_field(&value, "source") == Some("aws.securityhub") {
            return Layer::Leaf(value);
        }
        let detail = map.get("detail").cloned().unwrap_or(Value::Null);
        return Layer::Wrapped(vec![("eventbridge".into(), Ok(detail))]);
    }
    Layer::Leaf(value)
}

fn peel_records(records: &Value) -> Layer {
    let Some(records) = records.as_array() else {
        return Layer::Unusable("Records is not an array".into());
    };
    if records.is_empty() {
        return Layer::Unusable("the event has no Records".into());
    }
    if records.len() > MAX_RECORDS {
        return Layer::Unusable(format!(
            "the event has {} Records, over the limit of {MAX_RECORDS}",
            records.len()
        ));
    }
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let source = str_field(record, "eventSource").or_else(|| str_field(record, "EventSource"));
        let message = match source {
            Some("aws:sqs") => (
                format!("lambda-sqs-record[{i}]"),
                match str_field(record, "body") {
                    Some(b) => parse_embedded(b, &format!("Records[{i}].body")),
                    None => Err(format!("Records[{i}] has no body string")),
                },
            ),
            Some("aws:sns") => (
                format!("lambda-sns-record[{i}]"),
                match record.pointer("/Sns/Message").and_then(Value::as_str) {
                    Some(m) => parse_embedded(m, &format!("Records[{i}].Sns.Message")),
                    None => Err(format!("Records[{i}] has no Sns.Message string")),
                },
            ),
            other => (
                format!("record[{i}]"),
                Err(format!(
                    "Records[{i}] has event source {}, not aws:sqs or aws:sns",
                    other.map_or("(none)".to_string(), |s| format!("{s:?}"))
                )),
            ),
        };
        out.push(message);
    }
    Layer::Wrapped(out)
}

/// Unwraps every envelope in `value`, yielding the messages inside in order.
pub fn unwrap(value: Value) -> Vec<Unwrapped> {
    let mut out = Vec::new();
    // A stack of pending messages, processed depth-first so output order follows input order.
    let mut pending = vec![(Vec::<String>::new(), Ok(value))];
    while let Some((envelope, body)) = pending.pop() {
        let value = match body {
            Ok(v) => v,
            Err(reason) => {
                out.push(Unwrapped {
                    envelope,
                    body: Err(reason),
                });
                continue;
            }
        };
        if envelope.len() >= MAX_DEPTH {
            out.push(Unwrapped {
                envelope,
                body: Err(format!("envelopes nest deeper than {MAX_DEPTH} levels")),
            });
            continue;
        }
        match peel(value) {
            Layer::Leaf(v) => out.push(Unwrapped {
                envelope,
                body: Ok(v),
            }),
            Layer::Unusable(reason) => out.push(Unwrapped {
                envelope,
                body: Err(reason),
            }),
            Layer::Wrapped(inner) => {
                for (segment, body) in inner.into_iter().rev() {
                    let mut path = envelope.clone();
                    path.push(segment);
                    pending.push((path, body));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lambda_sqs_of_sns_notification() {
        let inner = json!({"hello": 1}).to_string();
        let sns = json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": inner});
        let event = json!({"Records": [{"eventSource": "aws:sqs", "body": sns.to_string()}]});
        let out = unwrap(event);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].envelope,
            ["lambda-sqs-record[0]", "sns-notification"]
        );
        assert_eq!(out[0].body, Ok(json!({"hello": 1})));
    }

    #[test]
    fn bad_records_are_reported_one_by_one() {
        let event = json!({"Records": [
            {"eventSource": "aws:sqs", "body": "{not json"},
            {"eventSource": "aws:sqs", "body": "{\"ok\":true}"},
            {"eventSource": "aws:s3"}
        ]});
        let out = unwrap(event);
        assert_eq!(out.len(), 3);
        assert!(out[0]
            .body
            .as_ref()
            .unwrap_err()
            .starts_with("Records[0].body is not JSON"));
        assert_eq!(out[1].body, Ok(json!({"ok": true})));
        assert_eq!(
            out[2].body,
            Err("Records[2] has event source \"aws:s3\", not aws:sqs or aws:sns".into())
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut v = json!({"x": 1});
        for _ in 0..10 {
            v = Value::String(v.to_string());
        }
        let out = unwrap(v);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].body,
            Err(format!("envelopes nest deeper than {MAX_DEPTH} levels"))
        );
    }

    #[test]
    fn subscription_confirmations_are_not_followed() {
        let v = json!({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "SubscribeURL": "x"});
        let out = unwrap(v);
        assert!(out[0]
            .body
            .as_ref()
            .unwrap_err()
            .contains("never confirms subscriptions"));
    }
}
