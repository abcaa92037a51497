//! Both encodings of the requests, decoded with the `opentelemetry-proto`
//! types: the protobuf byte for byte as prost writes it, the JSON to the
//! same message.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use prost::Message as _;

use crate::convert::{MAX_EVENTS_PER_SPAN, OpenSpans};
use crate::json::{logs_json, resource_json, traces_json};
use crate::proto_common::resource_protobuf;
use crate::proto_logs::logs_protobuf;
use crate::proto_traces::traces_protobuf;
use crate::semconv::{CODE_FILE, CODE_FUNCTION, CODE_LINE};
use crate::wire::{DURATION_FIELD, ERROR_FIELD};
use aitrace_model::Level;
use aitrace_model::Value;
use aitrace_model::{Record, SpanContext};

fn resource() -> Vec<(String, Value)> {
    vec![
        ("service.name".to_owned(), Value::from("shop")),
        ("n".to_owned(), Value::from(3)),
    ]
}

/// Both encodings of a batch, decoded with the `opentelemetry-proto`
/// types; they must agree.
fn logs(records: &[Record]) -> ExportLogsServiceRequest {
    let refs: Vec<&Record> = records.iter().collect();
    let mut pb = Vec::new();
    logs_protobuf(&refs, &resource_protobuf(&resource()), &mut pb);
    let from_pb = ExportLogsServiceRequest::decode(&pb[..]).expect("protobuf");
    // Byte for byte what prost writes for the same message.
    assert_eq!(from_pb.encode_to_vec(), pb);
    let mut json = Vec::new();
    logs_json(&refs, &resource_json(&resource()), &mut json);
    let from_json: ExportLogsServiceRequest = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
    assert_eq!(from_pb, from_json, "{}", String::from_utf8_lossy(&json));
    from_pb
}

fn traces(records: &[Record]) -> ExportTraceServiceRequest {
    traces_with(records, false)
}

/// A traces request of `records`, with span events on or off, checked
/// as [`logs`] is.
fn traces_with(records: &[Record], events: bool) -> ExportTraceServiceRequest {
    let mut open = OpenSpans::default();
    let spans = open.plan(records, true, events).spans;
    let mut pb = Vec::new();
    traces_protobuf(&spans, &resource_protobuf(&resource()), &mut pb);
    let from_pb = ExportTraceServiceRequest::decode(&pb[..]).expect("protobuf");
    assert_eq!(from_pb.encode_to_vec(), pb);
    let mut json = Vec::new();
    traces_json(&spans, &resource_json(&resource()), &mut json);
    let from_json: ExportTraceServiceRequest = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
    assert_eq!(from_pb, from_json, "{}", String::from_utf8_lossy(&json));
    from_pb
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Av> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn s(text: &str) -> Av {
    Av::StringValue(text.to_owned())
}

#[test]
fn values_are_typed_and_repeated_keys_written_once() {
    let cx = SpanContext::new_root();
    let record = Record::builder(Level::Warn, "checked")
        .logger("shop::pay")
        .span_context(cx)
        .field("a", 1)
        .field("neg", -5i64)
        .field("big", u64::MAX)
        .field("f", 0.1)
        .field("nan", f64::NAN)
        .field("inf", f64::NEG_INFINITY)
        .field("null", Value::Null)
        .field("raw", Value::Bytes(vec![0, 255].into()))
        .field(
            "obj",
            Value::Object(
                vec![
                    ("k".to_owned(), Value::from(1)),
                    ("k".to_owned(), Value::from("last")),
                ]
                .into(),
            ),
        )
        .field("list", vec![true, false])
        .field("a", "again")
        .field(CODE_FILE, "user's own")
        .file("src/pay.rs")
        .line(7)
        .function("pay")
        .build();
    let request = logs(std::slice::from_ref(&record));
    let rl = &request.resource_logs[0];
    assert_eq!(
        attr(&rl.resource.as_ref().unwrap().attributes, "n"),
        Some(&Av::IntValue(3))
    );
    assert_eq!(rl.scope_logs[0].scope.as_ref().unwrap().name, "shop::pay");
    let log = &rl.scope_logs[0].log_records[0];
    assert_eq!(log.time_unix_nano, record.timestamp_nanos());
    assert_eq!(log.observed_time_unix_nano, record.timestamp_nanos());
    assert_eq!(
        (log.severity_number, log.severity_text.as_str()),
        (13, "WARN")
    );
    assert_eq!(log.body.as_ref().unwrap().value, Some(s("checked")));
    assert_eq!(log.trace_id, cx.trace_id().to_bytes());
    assert_eq!(log.span_id, cx.span_id().to_bytes());
    assert_eq!(log.flags, 1);
    let a = &log.attributes;
    let keys: Vec<&str> = a.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "neg",
            "big",
            "f",
            "nan",
            "inf",
            "null",
            "raw",
            "obj",
            "list",
            "a",
            CODE_FILE,
            CODE_LINE,
            CODE_FUNCTION
        ]
    );
    assert_eq!(attr(a, "a"), Some(&s("again")));
    assert_eq!(attr(a, "neg"), Some(&Av::IntValue(-5)));
    assert_eq!(attr(a, "big"), Some(&s("18446744073709551615")));
    assert_eq!(attr(a, "f"), Some(&Av::DoubleValue(0.1)));
    assert_eq!(attr(a, "nan"), Some(&s("NaN")));
    assert_eq!(attr(a, "inf"), Some(&s("-Infinity")));
    assert_eq!(attr(a, "null"), None);
    assert_eq!(attr(a, "raw"), Some(&Av::BytesValue(vec![0, 255])));
    let Some(Av::KvlistValue(obj)) = attr(a, "obj") else {
        panic!("{a:?}")
    };
    assert_eq!(obj.values.len(), 1);
    assert_eq!(attr(&obj.values, "k"), Some(&s("last")));
    let Some(Av::ArrayValue(list)) = attr(a, "list") else {
        panic!("{a:?}")
    };
    assert_eq!(
        list.values,
        [
            AnyValue {
                value: Some(Av::BoolValue(true))
            },
            AnyValue {
                value: Some(Av::BoolValue(false))
            }
        ]
    );
    assert_eq!(attr(a, CODE_FILE), Some(&s("src/pay.rs")));
    assert_eq!(attr(a, CODE_LINE), Some(&Av::IntValue(7)));
    assert_eq!(attr(a, CODE_FUNCTION), Some(&s("pay")));
}

#[test]
fn loggers_are_scopes_in_order_of_appearance() {
    let records: Vec<Record> = ["a", "b", "a"]
        .iter()
        .map(|l| Record::builder(Level::Info, "e").logger(*l).build())
        .chain(std::iter::once(
            Record::builder(Level::Info, "none").build(),
        ))
        .collect();
    let request = logs(&records);
    let scopes: Vec<(String, usize)> = request.resource_logs[0]
        .scope_logs
        .iter()
        .map(|s| (s.scope.as_ref().unwrap().name.clone(), s.log_records.len()))
        .collect();
    assert_eq!(
        scopes,
        [("a".into(), 2), ("b".into(), 1), (String::new(), 1)]
    );
    let plain = &request.resource_logs[0].scope_logs[2].log_records[0];
    assert!(plain.trace_id.is_empty() && plain.span_id.is_empty() && plain.flags == 0);
}

#[test]
fn a_span_is_built_from_its_end_and_its_start() {
    let root = SpanContext::new_root();
    let child = root.new_child();
    let start = Record::builder(Level::Info, "charge.start")
        .span_context(child)
        .provisional(true)
        .field("user", "u2")
        .field("items", 1)
        .build();
    let end = Record::builder(Level::Error, "charge.end")
        .span_context(child)
        .logger("shop")
        .field("items", 3)
        .field(DURATION_FIELD, 12.5)
        .span_end(true)
        .field(ERROR_FIELD, "card declined")
        .file("src/shop.rs")
        .build();
    let request = traces(&[start.clone(), end.clone()]);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.name, "charge");
    assert_eq!(span.trace_id, child.trace_id().to_bytes());
    assert_eq!(span.span_id, child.span_id().to_bytes());
    assert_eq!(span.parent_span_id, root.span_id().to_bytes());
    assert_eq!(span.kind, 1);
    assert_eq!(span.flags, 1);
    assert_eq!(span.start_time_unix_nano, start.timestamp_nanos());
    assert_eq!(span.end_time_unix_nano, end.timestamp_nanos());
    let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, ["user", "items", CODE_FILE]);
    assert_eq!(attr(&span.attributes, "items"), Some(&Av::IntValue(3)));
    let status = span.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "card declined"));

    // Without its start (an earlier process), the duration gives the start.
    let request = traces(std::slice::from_ref(&end));
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        12_500_000
    );
    // A span that did not fail has no status.
    let ok = Record::builder(Level::Info, "ok.end")
        .span_context(root)
        .field(DURATION_FIELD, 1)
        .span_end(true)
        .build();
    let request = traces(&[ok]);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert!(span.status.is_none() && span.parent_span_id.is_empty());
}

#[test]
fn span_events_kind_and_status_encode_as_prost_does() {
    let cx = SpanContext::new_root();
    let mut records = vec![
        Record::builder(Level::Info, "call.start")
            .span_context(cx)
            .provisional(true)
            .field("otel.kind", "Client")
            .field("otel.status_code", "ok")
            .build(),
    ];
    for i in 0..MAX_EVENTS + 2 {
        records.push(
            Record::builder(Level::Warn, if i == 0 { "" } else { "retry" })
                .span_context(cx)
                .field("i", i)
                .file("src/call.rs")
                .build(),
        );
    }
    records.push(
        Record::builder(Level::Info, "call.end")
            .span_context(cx)
            .field("otel.status_message", "not an error: kept")
            .field(DURATION_FIELD, 1)
            .span_end(true)
            .build(),
    );
    let request = traces_with(&records, true);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, 3);
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(1));
    assert_eq!(span.events.len(), MAX_EVENTS);
    assert_eq!(span.dropped_events_count, 2);
    assert_eq!(span.events[0].name, "");
    assert_eq!(span.events[1].name, "retry");
    assert_eq!(span.events[1].time_unix_nano, records[2].timestamp_nanos());
    let a = &span.events[1].attributes;
    assert_eq!(attr(a, "i"), Some(&Av::IntValue(1)));
    assert_eq!(attr(a, "level"), Some(&s("WARN")));
    assert_eq!(attr(a, CODE_FILE), Some(&s("src/call.rs")));
    let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, ["otel.status_message"]);
    // Off: no events.
    let request = traces_with(&records, false);
    assert!(
        request.resource_spans[0].scope_spans[0].spans[0]
            .events
            .is_empty()
    );
}

const MAX_EVENTS: usize = MAX_EVENTS_PER_SPAN;

#[test]
fn events_wait_for_a_span_that_ends_in_a_later_batch() {
    let cx = SpanContext::new_root();
    let first = vec![
        Record::builder(Level::Info, "job.start")
            .span_context(cx)
            .provisional(true)
            .build(),
        Record::builder(Level::Info, "step")
            .span_context(cx)
            .build(),
        Record::builder(Level::Info, "no span").build(),
    ];
    let mut open = OpenSpans::default();
    let plan = open.plan(&first, true, true);
    assert!(plan.spans.is_empty());
    assert_eq!((plan.wait.clone(), plan.unattached), (vec![1], 1));
    let wait = plan.wait;
    // Sent twice (a retry): remembered once.
    open.wait(&first, &wait);
    let end = vec![
        Record::builder(Level::Info, "job.end")
            .span_context(cx)
            .span_end(true)
            .build(),
        Record::builder(Level::Info, "last")
            .span_context(cx)
            .build(),
    ];
    let plan = open.plan(&end, true, true);
    let names: Vec<&str> = plan.spans[0].events.iter().map(|r| r.event()).collect();
    assert_eq!(names, ["step", "last"]);
    let ids = plan.ids;
    open.exported(&ids);
    // After its span went, an event of it goes on no span.
    let late = vec![
        Record::builder(Level::Info, "late")
            .span_context(cx)
            .build(),
    ];
    let plan = open.plan(&late, true, true);
    assert_eq!((plan.wait.len(), plan.unattached), (0, 1));
}

#[test]
fn open_spans_are_bounded_and_forgotten_when_ended() {
    let mut open = OpenSpans::default();
    let starts: Vec<Record> = (0..16_384 + 10)
        .map(|_| {
            Record::builder(Level::Info, "s.start")
                .span_context(SpanContext::new_root())
                .provisional(true)
                .build()
        })
        .collect();
    let (spans, ended) = open.spans(&starts, true);
    assert!(spans.is_empty() && ended.is_empty());
    assert_eq!(open.len(), 16_384);
    let end = Record::builder(Level::Info, "s.end")
        .span_context(*starts.last().unwrap().span_context().unwrap())
        .field(DURATION_FIELD, 1.0)
        .span_end(true)
        .build();
    let (_, ended) = open.spans(std::slice::from_ref(&end), true);
    open.exported(&ended);
    assert_eq!(open.len(), 16_383);
    // Sent once: a retry of the same batch leaves it out.
    let (again, _) = open.spans(std::slice::from_ref(&end), true);
    assert!(again.is_empty());
}

fn value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(Value::U64),
        any::<f64>().prop_map(Value::F64),
        ".{0,12}".prop_map(|s| Value::Str(s.into())),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(b.into())),
    ];
    leaf.prop_recursive(40, 96, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| Value::Array(v.into())),
            proptest::collection::vec(("[a-c]{1,2}", inner), 0..4)
                .prop_map(|v| Value::Object(v.into())),
        ]
    })
}

proptest::proptest! {
    /// Any fields give requests that decode, the same in both encodings.
    #[test]
    fn any_record_encodes_the_same_in_both_encodings(
        fields in proptest::collection::vec(("[a-e]{1,3}|code\\.file\\.path|duration_ms", value()), 0..24),
        event in ".{0,20}",
        logger in proptest::option::of("[a-z:]{0,8}"),
        file in proptest::option::of("[a-z/]{1,10}"),
        id in proptest::option::of(1u64..),
        otel_key in "otel\\.(name|kind|status_code|status_message)",
        otel_value in "(?i:server|client|ok|error|unset|x?)",
    ) {
        let cx = SpanContext::new_root().new_child();
        let mut builder = Record::builder(Level::Info, event.clone()).span_context(cx);
        if let Some(logger) = logger {
            builder = builder.logger(logger);
        }
        if let Some(file) = file {
            builder = builder.file(file).line(3);
        }
        for (k, v) in fields {
            builder = builder.field(k, v);
        }
        if let Some(id) = id.and_then(std::num::NonZeroU64::new) {
            builder = builder.record_id(id);
        }
        let record = builder.build();
        let request = logs(std::slice::from_ref(&record));
        let log = &request.resource_logs[0].scope_logs[0].log_records[0];
        proptest::prop_assert_eq!(log.body.as_ref().unwrap().value.clone(), Some(s(&event)));
        let keys: Vec<&str> = log.attributes.iter().map(|kv| kv.key.as_str()).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        proptest::prop_assert_eq!(unique.len(), keys.len(), "unique keys: {:?}", keys);
        // The same record as a span's end: a span, encoded the same both ways.
        let end = Record::builder(Level::Error, format!("{event}x.end"))
            .span_context(cx)
            .span_end(true)
            .fields(record.fields().map(|(k, v)| (k.to_owned(), v.clone())))
            .field(DURATION_FIELD, 1.5)
            .build();
        let request = traces(std::slice::from_ref(&end));
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        proptest::prop_assert_eq!(&span.name, &format!("{event}x"));
        proptest::prop_assert!(span.attributes.iter().all(|kv| kv.key != DURATION_FIELD));
        // With the record as the span's event, and any `otel.*` fields.
        let special = Record::builder(Level::Info, "y.end")
            .span_context(cx.new_child())
            .span_end(true)
            .field(otel_key, otel_value)
            .build();
        let request = traces_with(&[record, end, special], true);
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        proptest::prop_assert_eq!(spans.len(), 2);
        proptest::prop_assert_eq!(spans[0].events.len(), 1);
        proptest::prop_assert!(spans[1].events.is_empty());
    }
}
