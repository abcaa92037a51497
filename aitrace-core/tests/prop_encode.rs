//! Property tests of the encoder: any record, in every layout, is valid JSON
//! that reads back as the record's data, modulo the documented fallbacks
//! (`Value`'s docs: non-finite floats and bytes as strings, nesting past
//! `MAX_VALUE_DEPTH` as `"[max depth]"`; the layout's docs: reserved user
//! keys renamed with `user.`, a repeated key written once with its last
//! value).

use std::collections::HashSet;
use std::fmt;

use aitrace_core::wire::{MAX_VALUE_DEPTH, META_KEY, RENAMED_KEY_PREFIX};
use aitrace_core::{Layout, Level, Record, SpanContext, SpanId, TraceId, Value};
use proptest::prelude::*;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

const FLAT_KEYS: &[&str] = &[
    "timestamp",
    "event",
    "level",
    "logger",
    "trace_id",
    "span_id",
    "parent_span_id",
    "file",
    "line",
    "function",
    "provisional",
    "record_id",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => "[a-c]{1,2}",
        1 => prop::sample::select(vec![
            META_KEY, "event", "timestamp", "level", "trace_id", "user.event",
            "user.timestamp", "user.__tracer_meta__", "", "\u{0}", "\"\\\n",
        ])
        .prop_map(str::to_owned),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => prop::sample::select(vec![
            f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, f64::MIN_POSITIVE, f64::MAX,
            f64::MIN, 5e-324,
        ]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(Value::U64),
        float().prop_map(Value::F64),
        any::<String>().prop_map(|s| Value::Str(s.into())),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| Value::Bytes(b.into())),
        any::<i128>().prop_map(Value::from),
        any::<u128>().prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let tree = leaf().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec((key(), inner), 0..4).prop_map(|v| Value::Object(v.into())),
        ]
    });
    // A chain deeper than the limit, alternating arrays and objects.
    let deep = (0..2 * MAX_VALUE_DEPTH + 4, leaf(), key()).prop_map(|(depth, leaf, key)| {
        (0..depth).fold(leaf, |inner, i| {
            if i % 2 == 0 {
                Value::Array([inner].into())
            } else {
                Value::Object([(key.clone(), inner)].into())
            }
        })
    });
    prop_oneof![4 => tree, 1 => deep]
}

fn span_context() -> impl Strategy<Value = Option<SpanContext>> {
    prop::option::of(
        (1..=u128::MAX, 1..=u64::MAX, prop::option::of(1..=u64::MAX)).prop_map(|(t, s, p)| {
            SpanContext::new(
                TraceId::from_bytes(t.to_be_bytes()).unwrap(),
                SpanId::from_bytes(s.to_be_bytes()).unwrap(),
                p.map(|p| SpanId::from_bytes(p.to_be_bytes()).unwrap()),
            )
        }),
    )
}

#[derive(Clone, Debug)]
struct Input {
    level: Level,
    event: String,
    logger: Option<String>,
    context: Option<SpanContext>,
    /// Relative, so the project-root shortening does not apply.
    file: Option<String>,
    line: Option<u32>,
    function: Option<String>,
    provisional: bool,
    fields: Vec<(String, Value)>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop::sample::select(Level::ALL.to_vec()),
        any::<String>(),
        prop::option::of(any::<String>()),
        span_context(),
        prop::option::of(any::<String>().prop_filter("relative", |f| !f.starts_with('/'))),
        prop::option::of(1..=u32::MAX),
        prop::option::of(any::<String>()),
        any::<bool>(),
        prop::collection::vec((key(), value()), 0..20),
    )
        .prop_map(
            |(level, event, logger, context, file, line, function, provisional, fields)| Input {
                level,
                event,
                logger,
                context,
                file,
                line,
                function,
                provisional,
                fields,
            },
        )
}

fn record(input: &Input) -> Record {
    let mut builder = Record::builder(input.level, input.event.clone())
        .provisional(input.provisional)
        .fields(input.fields.clone());
    if let Some(logger) = &input.logger {
        builder = builder.logger(logger.clone());
    }
    if let Some(context) = input.context {
        builder = builder.span_context(context);
    }
    if let Some(file) = &input.file {
        builder = builder.file(file.clone());
    }
    if let Some(line) = input.line {
        builder = builder.line(line);
    }
    if let Some(function) = &input.function {
        builder = builder.function(function.clone());
    }
    builder.build()
}

/// What the encoder must write for `value` at `depth`.
fn expected_value(value: &Value, depth: usize) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::F64(n) if n.is_nan() => Json::from("NaN"),
        Value::F64(n) if n.is_infinite() => {
            Json::from(if *n > 0.0 { "Infinity" } else { "-Infinity" })
        }
        Value::F64(n) => Json::Number(Number::from_f64(*n).unwrap()),
        Value::Str(s) => Json::from(&**s),
        Value::Bytes(b) => Json::from(b.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        Value::Array(_) | Value::Object(_) if depth >= MAX_VALUE_DEPTH => Json::from("[max depth]"),
        Value::Array(items) => items.iter().map(|v| expected_value(v, depth + 1)).collect(),
        Value::Object(entries) => Json::Object(last_wins(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), expected_value(v, depth + 1))),
        )),
        _ => unreachable!("a Value variant this test does not know"),
    }
}

/// Each key once, with its last value, at the place of its last occurrence.
fn last_wins(entries: impl Iterator<Item = (String, Json)>) -> Map<String, Json> {
    let entries: Vec<_> = entries.collect();
    let mut map = Map::new();
    for (i, (key, value)) in entries.iter().enumerate() {
        if !entries[i + 1..].iter().any(|(later, _)| later == key) {
            map.insert(key.clone(), value.clone());
        }
    }
    map
}

fn reserved(layout: Layout, key: &str) -> bool {
    match layout {
        Layout::Flat => FLAT_KEYS.contains(&key),
        Layout::Compat => key == META_KEY || key == "timestamp",
        _ => key == META_KEY,
    }
}

fn expected_user_data(layout: Layout, input: &Input) -> Map<String, Json> {
    last_wins(input.fields.iter().map(|(key, value)| {
        let key = if reserved(layout, key) {
            format!("{RENAMED_KEY_PREFIX}{key}")
        } else {
            key.clone()
        };
        (key, expected_value(value, 0))
    }))
}

fn expected_meta(input: &Input) -> Map<String, Json> {
    let mut meta = Map::new();
    meta.insert("event".into(), Json::from(input.event.clone()));
    meta.insert("level".into(), Json::from(input.level.as_str()));
    if let Some(logger) = &input.logger {
        meta.insert("logger".into(), Json::from(logger.clone()));
    }
    if let Some(context) = input.context {
        meta.insert(
            "trace_id".into(),
            Json::from(context.trace_id().to_string()),
        );
        meta.insert("span_id".into(), Json::from(context.span_id().to_string()));
        meta.insert(
            "parent_span_id".into(),
            context
                .parent_span_id()
                .map_or(Json::Null, |p| Json::from(p.to_string())),
        );
    }
    if let Some(file) = &input.file {
        meta.insert("file".into(), Json::from(file.clone()));
    }
    if let Some(line) = input.line {
        meta.insert("line".into(), Json::from(line));
    }
    if let Some(function) = &input.function {
        meta.insert("function".into(), Json::from(function.clone()));
    }
    if input.provisional {
        meta.insert("provisional".into(), Json::Bool(true));
    }
    meta
}

/// JSON read strictly: a repeated key in any object is an error, not a
/// silent overwrite.
struct Strict(Json);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(Json::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(Json::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(Json::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
                Number::from_f64(v)
                    .map(|n| Strict(Json::Number(n)))
                    .ok_or_else(|| E::custom("non-finite number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(Json::from(v)))
            }
            fn visit_string<E>(self, v: String) -> Result<Strict, E> {
                Ok(Strict(Json::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Json::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                let mut items = Vec::new();
                while let Some(Strict(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Strict(Json::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
                let mut out = Map::new();
                let mut seen = HashSet::new();
                while let Some((key, Strict(value))) = map.next_entry::<String, Strict>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("repeated key {key:?}")));
                    }
                    out.insert(key, value);
                }
                Ok(Strict(Json::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse(text: &str) -> Map<String, Json> {
    let parsed: Strict = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    match parsed.0 {
        Json::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn check_timestamp(value: Option<&Json>) -> String {
    let ts = value.and_then(Json::as_str).expect("a timestamp string");
    assert_eq!(ts.len(), 27, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    ts.to_owned()
}

/// Keys in the order they were written.
fn keys(map: &Map<String, Json>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_layout_writes_json_that_reads_back_as_the_record(input in input()) {
        let record = record(&input);
        for layout in [Layout::Namespaced, Layout::Flat, Layout::Compat] {
            let text = layout.to_json(&record);
            prop_assert!(!text.contains('\n'), "a JSON Lines record is one line");
            let mut top = parse(&text);
            let mut meta = match layout {
                Layout::Flat => {
                    let meta: Map<_, _> = FLAT_KEYS
                        .iter()
                        .filter_map(|k| top.shift_remove(*k).map(|v| ((*k).to_owned(), v)))
                        .collect();
                    meta
                }
                _ => match top.shift_remove(META_KEY) {
                    Some(Json::Object(meta)) => meta,
                    other => panic!("{META_KEY} is {other:?}"),
                },
            };
            let timestamp = check_timestamp(meta.shift_remove("timestamp").as_ref());
            if layout == Layout::Compat {
                prop_assert_eq!(check_timestamp(top.shift_remove("timestamp").as_ref()), timestamp);
            }
            let expected = expected_meta(&input);
            prop_assert_eq!(&meta, &expected, "{:?} metadata", layout);
            let user = expected_user_data(layout, &input);
            prop_assert_eq!(&top, &user, "{:?} user data", layout);
            prop_assert_eq!(keys(&top), keys(&user), "{:?} user key order", layout);
        }
    }

    #[test]
    fn a_batch_is_a_json_array_and_json_lines_of_the_same_records(
        inputs in prop::collection::vec(input(), 0..4)
    ) {
        let records: Vec<Record> = inputs.iter().map(record).collect();
        for layout in [Layout::Namespaced, Layout::Flat, Layout::Compat] {
            let mut array = Vec::new();
            layout.write_array(&mut array, &records);
            let parsed: Strict = serde_json::from_slice(&array).expect("a JSON array");
            let Json::Array(items) = parsed.0 else { panic!("not an array") };
            prop_assert_eq!(items.len(), records.len());
            let mut lines = Vec::new();
            layout.write_lines(&mut lines, &records);
            let text = String::from_utf8(lines).expect("UTF-8");
            prop_assert_eq!(text.matches('\n').count(), records.len());
            for (line, item) in text.lines().zip(&items) {
                prop_assert_eq!(&Json::Object(parse(line)), item);
            }
        }
    }
}
