//! Property tests over the whole ingest path: whatever arrives, ingest returns at least one
//! outcome, never panics, and every rejection says why. CI bounds the run with PROPTEST_CASES.

use proptest::prelude::*;
use serde_json::Value;

use salve::ingest::{ingest, IngestConfig, IngestOutcome};

const SEEDS: &[&str] = &[
    include_str!("payloads/wiz-bucket-arn.json"),
    include_str!("payloads/securityhub-event-two-findings.json"),
    include_str!("payloads/lambda-sqs-event.json"),
    include_str!("payloads/sns-notification-wiz.json"),
    include_str!("payloads/wiz-bare-security-group.json"),
];

fn check(payload: &[u8]) {
    let items = ingest(payload, &IngestConfig::default());
    assert!(!items.is_empty(), "ingest must always say something");
    for item in items {
        if let IngestOutcome::Rejected { reason } = &item.outcome {
            assert!(!reason.is_empty());
        }
        if let IngestOutcome::Finding(f) = &item.outcome {
            assert!(!f.id.is_empty() && !f.resource.arn.is_empty());
        }
    }
}

/// Replaces one value somewhere in the document with `replacement`, found by walking `path`.
/// Strings that hold JSON are walked into, so envelopes get fuzzed too.
fn mutate(v: &mut Value, path: &[usize], replacement: Value) {
    let Some((&step, rest)) = path.split_first() else {
        *v = replacement;
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(step % m.len()).cloned().unwrap_or_default();
            if let Some(child) = m.get_mut(&key) {
                mutate(child, rest, replacement);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let len = a.len();
            mutate(&mut a[step % len], rest, replacement);
        }
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(mut inner) => {
                mutate(&mut inner, rest, replacement);
                *s = inner.to_string();
            }
            Err(_) => *v = replacement,
        },
        _ => *v = replacement,
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("arn:aws:s3:::".into())),
        Just(Value::String("sg-".into())),
        Just(Value::Array(vec![])),
        Just(serde_json::json!({})),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn mutated_real_payloads_never_panic(
        seed in 0..SEEDS.len(),
        path in proptest::collection::vec(0usize..64, 0..8),
        replacement in json_leaf(),
    ) {
        let mut v: Value = serde_json::from_str(SEEDS[seed]).unwrap();
        mutate(&mut v, &path, replacement);
        check(v.to_string().as_bytes());
    }

    #[test]
    fn truncated_real_payloads_never_panic(seed in 0..SEEDS.len(), cut in 0usize..4096) {
        let bytes = SEEDS[seed].as_bytes();
        check(&bytes[..cut.min(bytes.len())]);
    }
}
