//! Property tests of the redactor: any key and value, redacted with every
//! built-in pattern on, never panics, still encodes to valid JSON in every
//! layout, leaves no sensitive top-level key unredacted, and is idempotent;
//! any name a user adds matches itself;
//! key matching agrees with a model of "a default name at a word boundary".

use aitrace_core::wire::REDACTED;
use aitrace_core::{DEFAULT_REDACTED_KEYS, Layout, Level, Record, Redactor, Value};
use proptest::prelude::*;
use serde_json::Value as Json;

/// Any string, or text built from the shapes the value patterns look for.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        Just("Bearer ".to_owned()),
        Just("basic ".to_owned()),
        Just("eyJ".to_owned()),
        Just("AKIA".to_owned()),
        Just("password=".to_owned()),
        Just("://u:".to_owned()),
        Just("@".to_owned()),
        Just(REDACTED.to_owned()),
        "[A-Za-z0-9._=&?/+-]{0,24}",
    ];
    prop::collection::vec(piece, 0..6).prop_map(|parts| parts.concat())
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => prop::sample::select(DEFAULT_REDACTED_KEYS.to_vec()).prop_map(str::to_owned),
        1 => (any::<String>(), prop::sample::select(DEFAULT_REDACTED_KEYS.to_vec()))
            .prop_map(|(prefix, name)| format!("{prefix}{name}")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f64>().prop_map(Value::F64),
        text().prop_map(|s| Value::Str(s.into())),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(b.into())),
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec((key(), inner), 0..4).prop_map(|v| Value::Object(v.into())),
        ]
    })
}

fn record() -> impl Strategy<Value = Record> {
    (text(), prop::collection::vec((key(), value()), 0..6))
        .prop_map(|(event, fields)| Record::builder(Level::Info, event).fields(fields).build())
}

/// Built once: compiling the patterns is slow in a debug build.
static REDACTOR: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| {
    Redactor::default()
        .with_common_value_patterns()
        .value_pattern(r"(\d+)-(\d+)")
        .unwrap()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_record_redacts_to_valid_json_without_its_secrets(record in record()) {
        let redactor = &*REDACTOR;
        let mut redacted = record.clone();
        redactor.redact(&mut redacted);
        for layout in [Layout::Namespaced, Layout::Flat, Layout::Compat] {
            let text = layout.to_json(&redacted);
            let parsed: Result<Json, _> = serde_json::from_str(&text);
            prop_assert!(parsed.is_ok(), "{text}");
        }
        for (key, value) in redacted.fields() {
            if redactor.is_sensitive_key(key) {
                prop_assert_eq!(value, &Value::from(REDACTED), "{}", key);
            }
        }
        let mut twice = redacted.clone();
        redactor.redact(&mut twice);
        prop_assert_eq!(&twice, &redacted, "redacting is idempotent");
        let mut untouched = record.clone();
        Redactor::none().redact(&mut untouched);
        prop_assert_eq!(untouched, record);
    }

    /// Any name a user adds matches itself (unless it is all separators,
    /// which is ignored) and no longer once allowed; nothing panics.
    #[test]
    fn an_added_name_matches_itself(name in any::<String>(), other in any::<String>()) {
        let redactor = Redactor::default().key(&name).key(&other);
        let all_separators = name.bytes().all(|b| matches!(b, b'_' | b'-' | b'.' | b' '));
        prop_assert_eq!(redactor.is_sensitive_key(&name), !all_separators);
        prop_assert!(!redactor.allow_key(&name).is_sensitive_key(&name));
    }

    /// A key is sensitive exactly when a default name ends it at a word
    /// boundary, whatever the case and separators.
    #[test]
    fn key_matching_follows_word_boundaries(
        prefix in prop::sample::select(vec!["", "db", "x", "user2", "My"]),
        join in prop::sample::select(vec!["_", "-", ".", " ", "camel"]),
        name in prop::sample::select(DEFAULT_REDACTED_KEYS.to_vec()),
        upper in any::<bool>(),
        suffix in prop::sample::select(vec!["", "_count", "Count", "-len", "ish"]),
    ) {
        let words: Vec<&str> = name.split('_').collect();
        let name = if join == "camel" {
            words
                .iter()
                .map(|w| format!("{}{}", w[..1].to_ascii_uppercase(), &w[1..]))
                .collect::<String>()
        } else if upper {
            words.join(join).to_ascii_uppercase()
        } else {
            words.join(join)
        };
        let key = match (prefix, join) {
            ("", _) => name,
            (prefix, "camel") => format!("{prefix}{name}"),
            (prefix, join) => format!("{prefix}{join}{name}"),
        };
        let key = format!("{key}{suffix}");
        prop_assert_eq!(Redactor::default().is_sensitive_key(&key), suffix.is_empty(), "{}", key);
    }
}
