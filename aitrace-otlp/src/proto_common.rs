//! Protobuf of the messages both requests share (`common.v1`: `AnyValue`,
//! `KeyValue`, `InstrumentationScope`; `resource.v1.Resource`), a record's
//! attributes, and the framing of a request around its items.

use std::io::Write as _;

use crate::attributes::{Attrs, Extra, Field, MAX_DEPTH_TEXT, non_finite, object_fields};
use crate::fields::{
    any_value, array_value, instrumentation_scope, key_value, key_value_list, resource,
};
use crate::ids::hex;
use crate::protobuf::{
    VARINT, fixed64_field, key_len, len_field, put_bytes, put_fixed64, put_key, put_len,
    put_varint, small_varint_field, varint_len,
};
use aitrace_model::{Value, wire::MAX_VALUE_DEPTH};

/// The size of an `AnyValue` message holding `value`.
fn any_size(value: &Value, depth: usize) -> usize {
    match value {
        Value::Null => 0,
        Value::Bool(_) => small_varint_field(any_value::BOOL_VALUE),
        Value::I64(n) => key_len(any_value::INT_VALUE) + varint_len(*n as u64),
        Value::U64(n) if *n <= i64::MAX as u64 => key_len(any_value::INT_VALUE) + varint_len(*n),
        Value::U64(n) => len_field(any_value::STRING_VALUE, decimal_len(*n)),
        Value::F64(f) if f.is_finite() => fixed64_field(any_value::DOUBLE_VALUE),
        Value::F64(f) => len_field(any_value::STRING_VALUE, non_finite(*f).len()),
        Value::Str(s) => len_field(any_value::STRING_VALUE, s.len()),
        Value::Bytes(b) => len_field(any_value::BYTES_VALUE, b.len()),
        _ if depth >= MAX_VALUE_DEPTH => len_field(any_value::STRING_VALUE, MAX_DEPTH_TEXT.len()),
        Value::Array(items) => len_field(any_value::ARRAY_VALUE, array_size(items, depth)),
        Value::Object(entries) => len_field(any_value::KVLIST_VALUE, kvlist_size(entries, depth)),
        // A shape added to `Value` after this crate: an empty `AnyValue`,
        // as `put_any` writes it.
        _ => 0,
    }
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn array_size(items: &[Value], depth: usize) -> usize {
    items
        .iter()
        .map(|v| len_field(array_value::VALUES, any_size(v, depth + 1)))
        .sum()
}

fn kvlist_size(entries: &[(String, Value)], depth: usize) -> usize {
    object_fields(entries)
        .iter()
        .map(|(k, v)| len_field(key_value_list::VALUES, key_value_size(k, v, depth + 1)))
        .sum()
}

fn key_value_size(key: &str, value: &Value, depth: usize) -> usize {
    len_field(key_value::KEY, key.len()) + len_field(key_value::VALUE, any_size(value, depth))
}

fn put_any(buf: &mut Vec<u8>, value: &Value, depth: usize) {
    match value {
        Value::Null => {}
        Value::Bool(b) => {
            put_key(buf, any_value::BOOL_VALUE, VARINT);
            buf.push(u8::from(*b));
        }
        Value::I64(n) => {
            put_key(buf, any_value::INT_VALUE, VARINT);
            put_varint(buf, *n as u64);
        }
        Value::U64(n) if *n <= i64::MAX as u64 => {
            put_key(buf, any_value::INT_VALUE, VARINT);
            put_varint(buf, *n);
        }
        Value::U64(n) => {
            put_len(buf, any_value::STRING_VALUE, decimal_len(*n));
            let _ = write!(buf, "{n}");
        }
        Value::F64(f) if f.is_finite() => put_fixed64(buf, any_value::DOUBLE_VALUE, f.to_bits()),
        Value::F64(f) => put_bytes(buf, any_value::STRING_VALUE, non_finite(*f).as_bytes()),
        Value::Str(s) => put_bytes(buf, any_value::STRING_VALUE, s.as_bytes()),
        Value::Bytes(b) => put_bytes(buf, any_value::BYTES_VALUE, b),
        _ if depth >= MAX_VALUE_DEPTH => {
            put_bytes(buf, any_value::STRING_VALUE, MAX_DEPTH_TEXT.as_bytes())
        }
        Value::Array(items) => {
            put_len(buf, any_value::ARRAY_VALUE, array_size(items, depth));
            for item in items.iter() {
                put_len(buf, array_value::VALUES, any_size(item, depth + 1));
                put_any(buf, item, depth + 1);
            }
        }
        Value::Object(entries) => {
            let fields = object_fields(entries);
            let size: usize = fields
                .iter()
                .map(|(k, v)| len_field(key_value_list::VALUES, key_value_size(k, v, depth + 1)))
                .sum();
            put_len(buf, any_value::KVLIST_VALUE, size);
            for (k, v) in fields {
                put_key_value(buf, key_value_list::VALUES, k, v, depth + 1);
            }
        }
        // A shape added to `Value` after this crate: an empty `AnyValue`.
        _ => {}
    }
}

fn put_key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value, depth: usize) {
    let any = any_size(value, depth);
    put_len(
        buf,
        field,
        len_field(key_value::KEY, key.len()) + len_field(key_value::VALUE, any),
    );
    put_bytes(buf, key_value::KEY, key.as_bytes());
    put_len(buf, key_value::VALUE, any);
    put_any(buf, value, depth);
}

impl Extra<'_> {
    /// The size of the `AnyValue` it holds.
    fn any_size(&self) -> usize {
        match self {
            Extra::Str(_, s) => len_field(any_value::STRING_VALUE, s.len()),
            Extra::Int(_, n) => key_len(any_value::INT_VALUE) + varint_len(*n as u64),
            Extra::Hex(..) => len_field(any_value::STRING_VALUE, 16),
        }
    }

    fn size(&self, field: u32) -> usize {
        len_field(
            field,
            len_field(key_value::KEY, self.key().len())
                + len_field(key_value::VALUE, self.any_size()),
        )
    }

    fn put(&self, buf: &mut Vec<u8>, field: u32) {
        let any = self.any_size();
        put_len(
            buf,
            field,
            len_field(key_value::KEY, self.key().len()) + len_field(key_value::VALUE, any),
        );
        put_bytes(buf, key_value::KEY, self.key().as_bytes());
        put_len(buf, key_value::VALUE, any);
        match self {
            Extra::Str(_, s) => put_bytes(buf, any_value::STRING_VALUE, s.as_bytes()),
            Extra::Int(_, n) => {
                put_key(buf, any_value::INT_VALUE, VARINT);
                put_varint(buf, *n as u64);
            }
            Extra::Hex(_, id) => {
                put_bytes(buf, any_value::STRING_VALUE, &hex::<16>(&id.to_be_bytes()));
            }
        }
    }
}

impl<'a> Attrs<'a> {
    /// The size of its attributes as `field`s of their message.
    #[inline]
    pub(crate) fn size(&self, flat: &[Field<'a>], field: u32) -> usize {
        self.fields(flat)
            .iter()
            .map(|(k, v)| len_field(field, key_value_size(k, v, 0)))
            .sum::<usize>()
            + self.extras().map(|e| e.size(field)).sum::<usize>()
    }

    /// Writes its attributes as `field`s of their message.
    #[inline]
    pub(crate) fn put(&self, flat: &[Field<'a>], buf: &mut Vec<u8>, field: u32) {
        for (k, v) in self.fields(flat) {
            put_key_value(buf, field, k, v, 0);
        }
        for extra in self.extras() {
            extra.put(buf, field);
        }
    }
}

/// The protobuf of the resource (its attributes), written once.
pub(crate) fn resource_protobuf(attrs: &[(String, Value)]) -> Vec<u8> {
    let mut buf = Vec::new();
    for (k, v) in attrs {
        put_key_value(&mut buf, resource::ATTRIBUTES, k, v, 0);
    }
    buf
}

fn scope_size(name: Option<&str>) -> usize {
    match name {
        Some(name) if !name.is_empty() => len_field(instrumentation_scope::NAME, name.len()),
        _ => 0,
    }
}

fn put_scope(buf: &mut Vec<u8>, field: u32, name: Option<&str>) {
    put_len(buf, field, scope_size(name));
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        put_bytes(buf, instrumentation_scope::NAME, name.as_bytes());
    }
}

/// The field numbers that frame a request's items, the same numbers in
/// both requests under different names: each request names its own in a
/// `FRAMING` (`proto_logs.rs`, `proto_traces.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Framing {
    /// `resource_logs` of the request, or `resource_spans`.
    pub(crate) resource_items: u32,
    /// `resource` of that.
    pub(crate) resource: u32,
    /// `scope_logs`, or `scope_spans`.
    pub(crate) scope_items: u32,
    /// `scope` of that.
    pub(crate) scope: u32,
    /// `log_records`, or `spans`.
    pub(crate) items: u32,
}

/// Writes a request's one `ResourceLogs`/`ResourceSpans`: the resource,
/// then a scope message per logger holding its items. `sizes[i]` is item
/// `i`'s size; `put_item` writes it.
pub(crate) fn put_request(
    buf: &mut Vec<u8>,
    framing: &Framing,
    resource: &[u8],
    groups: &[(Option<&str>, Vec<usize>)],
    sizes: &[usize],
    mut put_item: impl FnMut(&mut Vec<u8>, usize),
) {
    let Framing {
        resource_items,
        resource: resource_field,
        scope_items,
        scope,
        items,
    } = *framing;
    let scopes: Vec<usize> = groups
        .iter()
        .map(|(name, members)| {
            len_field(scope, scope_size(*name))
                + members
                    .iter()
                    .map(|&i| len_field(items, sizes[i]))
                    .sum::<usize>()
        })
        .collect();
    let total = len_field(resource_field, resource.len())
        + scopes
            .iter()
            .map(|&n| len_field(scope_items, n))
            .sum::<usize>();
    buf.reserve(len_field(resource_items, total));
    put_len(buf, resource_items, total);
    put_bytes(buf, resource_field, resource);
    for ((name, members), size) in groups.iter().zip(&scopes) {
        put_len(buf, scope_items, *size);
        put_scope(buf, scope, *name);
        for &i in members {
            put_len(buf, items, sizes[i]);
            put_item(buf, i);
        }
    }
}
