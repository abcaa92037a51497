//! Protobuf of `ExportLogsServiceRequest`: each record a `LogRecord`.

use crate::attributes::{Attrs, Field};
use crate::convert::{groups, ids};
use crate::fields::{
    FLAGS_SAMPLED, any_value, export_logs_service_request, log_record, resource_logs, scope_logs,
};
use crate::proto_common::{Framing, put_request};
use crate::protobuf::{
    VARINT, len_field, put_bytes, put_fixed32, put_fixed64, put_key, put_len, put_varint,
};
use crate::semconv::severity;
use aitrace_model::Record;
use aitrace_model::scratch::{Scratch, with_scratch};

/// How a logs request frames its records.
pub(crate) const FRAMING: Framing = Framing {
    resource_items: export_logs_service_request::RESOURCE_LOGS,
    resource: resource_logs::RESOURCE,
    scope_items: resource_logs::SCOPE_LOGS,
    scope: scope_logs::SCOPE,
    items: scope_logs::LOG_RECORDS,
};

fn put_log_record(buf: &mut Vec<u8>, record: &Record, attrs: &Attrs<'_>, flat: &[Field<'_>]) {
    let (number, text) = severity(record.level());
    let time = record.timestamp_nanos();
    put_fixed64(buf, log_record::TIME_UNIX_NANO, time);
    put_key(buf, log_record::SEVERITY_NUMBER, VARINT);
    put_varint(buf, number as u64);
    put_bytes(buf, log_record::SEVERITY_TEXT, text.as_bytes());
    let body = record.event().as_bytes();
    put_len(
        buf,
        log_record::BODY,
        len_field(any_value::STRING_VALUE, body.len()),
    );
    put_bytes(buf, any_value::STRING_VALUE, body);
    attrs.put(flat, buf, log_record::ATTRIBUTES);
    if let Some((trace, span)) = ids(record) {
        put_fixed32(buf, log_record::FLAGS, FLAGS_SAMPLED);
        put_bytes(buf, log_record::TRACE_ID, &trace);
        put_bytes(buf, log_record::SPAN_ID, &span);
    }
    put_fixed64(buf, log_record::OBSERVED_TIME_UNIX_NANO, time);
}

/// `ExportLogsServiceRequest` of `records` as protobuf into `buf`.
///
/// Each record is written once, into a scratch buffer kept by the thread,
/// and its size read off the result; then the request is framed around
/// them (a separate pass to size every attribute cost about as much as
/// writing it).
pub(crate) fn logs_protobuf(records: &[&Record], resource: &[u8], buf: &mut Vec<u8>) {
    /// The largest scratch buffer a thread keeps (a flush without a
    /// background sender encodes on the application's thread).
    const MAX_KEPT: usize = 1 << 20;
    thread_local! {
        static BODIES: Scratch = const { Scratch::new(Vec::new()) };
    }
    with_scratch(&BODIES, MAX_KEPT, |bodies| {
        put_logs(records, resource, buf, bodies);
    });
}

/// [`logs_protobuf`] with the record bodies written in `bodies` first.
fn put_logs(records: &[&Record], resource: &[u8], buf: &mut Vec<u8>, bodies: &mut Vec<u8>) {
    let mut flat = Vec::with_capacity(records.len() * 4);
    let attrs: Vec<Attrs<'_>> = records
        .iter()
        .map(|r| Attrs::of_event(r, &mut flat))
        .collect();
    let mut ends = Vec::with_capacity(records.len());
    for (record, attrs) in records.iter().zip(&attrs) {
        put_log_record(bodies, record, attrs, &flat);
        ends.push(bodies.len());
    }
    let sizes: Vec<usize> = ends
        .iter()
        .scan(0, |start, &end| Some(end - std::mem::replace(start, end)))
        .collect();
    let groups = groups(records.iter().map(|r| r.logger()));
    put_request(buf, &FRAMING, resource, &groups, &sizes, |buf, i| {
        buf.extend_from_slice(&bodies[ends[i] - sizes[i]..ends[i]]);
    });
}
