//! Reading a Terraform state instance's attributes for drift: each kind's `KindDrift::declared`
//! uses these so a missing or mistyped attribute is an error that names it, never a panic.

use serde_json::{Map, Value};

pub type Attributes = Map<String, Value>;

fn mistyped(key: &str, what: &str, v: &Value) -> String {
    format!("attribute {key:?} is {v}, not {what}")
}

/// A string attribute; `None` when unset or null.
pub fn string<'a>(attrs: &'a Attributes, key: &str) -> Result<Option<&'a str>, String> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(mistyped(key, "a string", v)),
    }
}

/// A boolean attribute; `None` when unset or null.
pub fn boolean(attrs: &Attributes, key: &str) -> Result<Option<bool>, String> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(mistyped(key, "true or false", v)),
    }
}

/// A whole-number attribute (Terraform writes ports as numbers; some providers as strings).
pub fn integer(attrs: &Attributes, key: &str) -> Result<Option<i64>, String> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| mistyped(key, "a whole number", &Value::Number(n.clone()))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| mistyped(key, "a whole number", &Value::String(s.clone()))),
        Some(v) => Err(mistyped(key, "a whole number", v)),
    }
}

/// A list (or set) of strings; empty when unset or null.
pub fn strings<'a>(attrs: &'a Attributes, key: &str) -> Result<Vec<&'a str>, String> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| mistyped(key, "a list of strings", i))
            })
            .collect(),
        Some(v) => Err(mistyped(key, "a list of strings", v)),
    }
}

/// A list of nested blocks (`ingress` of a security group); `None` when unset or null.
pub fn blocks<'a>(attrs: &'a Attributes, key: &str) -> Result<Option<Vec<&'a Attributes>>, String> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_object()
                    .ok_or_else(|| mistyped(key, "a list of blocks", i))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(mistyped(key, "a list of blocks", v)),
    }
}

/// The instance's `arn` attribute, else the ARN `build` makes from its ID.
pub fn arn_or(attrs: &Attributes, build: impl FnOnce() -> String) -> Result<String, String> {
    Ok(match string(attrs, "arn")? {
        Some(arn) => arn.to_string(),
        None => build(),
    })
}

/// One spelling of an IP protocol, so `tcp`, `6` and `TCP` are one: names for the common
/// numbers, `all` for every protocol (`-1`).
pub fn protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "-1" | "all" => "all".into(),
        "6" | "tcp" => "tcp".into(),
        "17" | "udp" => "udp".into(),
        "1" | "icmp" => "icmp".into(),
        "58" | "icmpv6" => "icmpv6".into(),
        other => other.into(),
    }
}

/// A rule's protocol and ports as one comparable string; ports mean nothing for `all`.
pub fn ports(protocol_name: &str, from: Option<i64>, to: Option<i64>) -> String {
    let p = protocol(protocol_name);
    match (p.as_str(), from, to) {
        ("all", _, _) => p,
        (_, Some(f), Some(t)) => format!("{p} {f}-{t}"),
        (_, Some(f), None) => format!("{p} {f}"),
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mistyped_attributes_are_named() {
        let attrs = json!({"a": 1, "b": "x", "c": [1]})
            .as_object()
            .unwrap()
            .clone();
        assert!(string(&attrs, "a").unwrap_err().contains("\"a\""));
        assert!(boolean(&attrs, "b").unwrap_err().contains("\"b\""));
        assert!(strings(&attrs, "c").unwrap_err().contains("\"c\""));
        assert_eq!(
            integer(&attrs, "b").unwrap_err(),
            "attribute \"b\" is \"x\", not a whole number"
        );
        assert_eq!(string(&attrs, "missing").unwrap(), None);
    }

    #[test]
    fn protocols_have_one_spelling() {
        assert_eq!(
            ports("6", Some(22), Some(22)),
            ports("tcp", Some(22), Some(22))
        );
        assert_eq!(ports("-1", Some(0), Some(0)), ports("all", None, None));
    }
}
