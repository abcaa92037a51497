//! The value of a user field: every JSON shape, plus the shapes JSON cannot hold.

use std::borrow::Cow;
use std::fmt;

mod str;
pub use self::str::{INLINE_STR_LEN, Str};

pub use crate::wire::MAX_VALUE_DEPTH;

/// The string written in place of a value nested deeper than [`MAX_VALUE_DEPTH`].
pub const DEPTH_MARKER: &str = "[max depth]";

/// The value of a user field.
///
/// Covers every JSON shape plus two that JSON cannot represent. The encoder
/// writes those as follows, so a record never fails to encode:
///
/// | value | written as |
/// |---|---|
/// | `F64(NaN)`, `F64(±∞)` | the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
/// | `Bytes(b)` | a string of lower-case hex digits, two per byte (lossless) |
/// | nesting deeper than [`MAX_VALUE_DEPTH`] | the string `"[max depth]"` |
/// | `i128`/`u128` outside the 64-bit range | a decimal string |
///
/// Invalid UTF-8 that should stay readable text goes through
/// [`Value::from_utf8_lossy`], which replaces bad sequences with `U+FFFD`.
///
/// # Examples
///
/// ```
/// use aitrace_model::Value;
///
/// assert_eq!(Value::from(3), Value::I64(3));
/// assert_eq!(Value::from("u2"), Value::Str("u2".into()));
/// assert_eq!(Value::from(Some(1.5)), Value::F64(1.5));
/// assert_eq!(Value::from(None::<bool>), Value::Null);
/// assert_eq!(Value::from(vec![1, 2]), Value::Array([Value::I64(1), Value::I64(2)].into()));
/// // 24 bytes: every variant's payload fits in two words.
/// assert_eq!(size_of::<Value>(), 24);
/// ```
#[derive(Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer (kept apart so `u64::MAX` survives).
    U64(u64),
    /// A float; non-finite values are written as strings.
    F64(f64),
    /// A string (up to [`INLINE_STR_LEN`] bytes kept inline: [`Str`]).
    Str(Str),
    /// Raw bytes, written as lower-case hex.
    Bytes(Box<[u8]>),
    /// A JSON array.
    Array(Box<[Value]>),
    /// A JSON object, in insertion order.
    Object(Box<[(String, Value)]>),
}

impl Value {
    /// A string value from bytes that should be UTF-8, replacing invalid
    /// sequences with `U+FFFD`.
    pub fn from_utf8_lossy(bytes: &[u8]) -> Self {
        Value::Str(String::from_utf8_lossy(bytes).into())
    }

    /// A string value.
    pub fn from_static(s: &'static str) -> Self {
        Value::Str(s.into())
    }

    /// Converts any [`serde::Serialize`] value through `serde_json`.
    ///
    /// A value `serde_json` refuses (a map with non-string keys, say) becomes
    /// a string holding the error, prefixed `"[unserializable: "`, rather
    /// than failing the record.
    pub fn from_serialize<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_value(value) {
            Ok(json) => Value::from(json),
            Err(err) => Value::Str(format!("[unserializable: {err}]").into()),
        }
    }

    /// A string holding `value`'s [`fmt::Debug`] text.
    pub fn from_debug<T: fmt::Debug + ?Sized>(value: &T) -> Self {
        Value::Str(format!("{value:?}").into())
    }

    /// A string holding `value`'s [`fmt::Display`] text.
    pub fn from_display<T: fmt::Display + ?Sized>(value: &T) -> Self {
        Value::Str(value.to_string().into())
    }

    /// The string inside a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Bytes of heap memory this value owns (not counting `self`).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::Bytes(b) => b.len(),
            Value::Array(items) => {
                items.len() * size_of::<Value>() + items.iter().map(Value::heap_size).sum::<usize>()
            }
            Value::Object(entries) => {
                entries.len() * size_of::<(String, Value)>()
                    + entries
                        .iter()
                        .map(|(k, v)| k.capacity() + v.heap_size())
                        .sum::<usize>()
            }
            _ => 0,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => fmt::Debug::fmt(b, f),
            Value::I64(n) => fmt::Debug::fmt(n, f),
            Value::U64(n) => fmt::Debug::fmt(n, f),
            Value::F64(n) => fmt::Debug::fmt(n, f),
            Value::Str(s) => fmt::Debug::fmt(s, f),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::Array(items) => f.debug_list().entries(items.iter()).finish(),
            Value::Object(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(k, v)| (k, v)))
                .finish(),
        }
    }
}

macro_rules! from_int {
    ($variant:ident as $wide:ty: $($t:ty),*) => {$(
        impl From<$t> for Value {
            #[inline]
            fn from(n: $t) -> Self {
                Value::$variant(<$wide>::from(n))
            }
        }
    )*};
}
from_int!(I64 as i64: i8, i16, i32, i64);
from_int!(U64 as u64: u8, u16, u32, u64);

impl From<isize> for Value {
    #[inline]
    fn from(n: isize) -> Self {
        Value::I64(n as i64)
    }
}

impl From<usize> for Value {
    #[inline]
    fn from(n: usize) -> Self {
        Value::U64(n as u64)
    }
}

impl From<i128> for Value {
    #[inline]
    fn from(n: i128) -> Self {
        match i64::try_from(n) {
            Ok(n) => Value::I64(n),
            Err(_) => match u64::try_from(n) {
                Ok(n) => Value::U64(n),
                Err(_) => Value::Str(n.to_string().into()),
            },
        }
    }
}

impl From<u128> for Value {
    #[inline]
    fn from(n: u128) -> Self {
        match u64::try_from(n) {
            Ok(n) => Value::U64(n),
            Err(_) => Value::Str(n.to_string().into()),
        }
    }
}

impl From<f32> for Value {
    #[inline]
    fn from(n: f32) -> Self {
        Value::F64(f64::from(n))
    }
}

impl From<f64> for Value {
    #[inline]
    fn from(n: f64) -> Self {
        Value::F64(n)
    }
}

impl From<bool> for Value {
    #[inline]
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<char> for Value {
    #[inline]
    fn from(c: char) -> Self {
        Value::Str(c.to_string().into())
    }
}

impl From<&str> for Value {
    #[inline]
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}

impl From<String> for Value {
    #[inline]
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}

impl From<&String> for Value {
    #[inline]
    fn from(s: &String) -> Self {
        Value::Str(s.as_str().into())
    }
}

impl From<Cow<'_, str>> for Value {
    #[inline]
    fn from(s: Cow<'_, str>) -> Self {
        Value::Str(s.into())
    }
}

/// Raw bytes, written as hex. A `Vec<u8>` goes through the `Vec<T>`
/// conversion like any other vector and becomes an array of numbers; pass
/// `&bytes[..]` for hex.
///
/// ```
/// use aitrace_model::Value;
///
/// let bytes = vec![0xab_u8, 0x01];
/// assert_eq!(Value::from(&bytes[..]), Value::Bytes([0xab, 0x01].into()));
/// assert_eq!(Value::from(bytes), Value::Array([Value::U64(0xab), Value::U64(1)].into()));
/// ```
impl From<&[u8]> for Value {
    #[inline]
    fn from(b: &[u8]) -> Self {
        Value::Bytes(b.into())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    #[inline]
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    #[inline]
    fn from(items: Vec<T>) -> Self {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Value::Object(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Self {
        from_json(json, 0)
    }
}

fn from_json(json: serde_json::Value, depth: usize) -> Value {
    use serde_json::Value as J;
    if depth > MAX_VALUE_DEPTH && matches!(json, J::Array(_) | J::Object(_)) {
        return Value::from_static(DEPTH_MARKER);
    }
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::I64(i)
            } else if let Some(u) = n.as_u64() {
                Value::U64(u)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::Str(s.into()),
        J::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| from_json(item, depth + 1))
                .collect(),
        ),
        J::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, from_json(v, depth + 1)))
                .collect(),
        ),
    }
}

/// A value serializes as the wire format writes it (NaN and the infinities
/// as strings, bytes as hex, nesting past [`MAX_VALUE_DEPTH`] as a marker),
/// for an exporter that stores fields its own way.
///
/// ```
/// use aitrace_model::Value;
///
/// let value = Value::from(vec![Value::from(1), Value::from(f64::NAN)]);
/// assert_eq!(serde_json::to_string(&value).unwrap(), r#"[1,"NaN"]"#);
/// ```
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Encode {
            value: self,
            depth: 0,
        }
        .serialize(s)
    }
}

/// Serializes a value with the documented fallbacks and depth limit.
#[derive(Debug)]
pub struct Encode<'a> {
    pub value: &'a Value,
    pub depth: usize,
}

impl serde::Serialize for Encode<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.value {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::I64(n) => s.serialize_i64(*n),
            Value::U64(n) => s.serialize_u64(*n),
            Value::F64(n) if n.is_finite() => s.serialize_f64(*n),
            Value::F64(n) if n.is_nan() => s.serialize_str("NaN"),
            Value::F64(n) if *n > 0.0 => s.serialize_str("Infinity"),
            Value::F64(_) => s.serialize_str("-Infinity"),
            Value::Str(text) => s.serialize_str(text),
            Value::Bytes(bytes) => s.collect_str(&Hex(bytes)),
            Value::Array(_) | Value::Object(_) if self.depth >= MAX_VALUE_DEPTH => {
                s.serialize_str(DEPTH_MARKER)
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Encode {
                        value,
                        depth: self.depth + 1,
                    })?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                // A repeated key is written once, with its last value, as
                // for a record's own fields: readers disagree on `{"a":1,"a":2}`.
                let written = last_of_each_key(entries);
                let mut map = s.serialize_map(Some(written.len()))?;
                for (key, value) in written {
                    map.serialize_entry(
                        key,
                        &Encode {
                            value,
                            depth: self.depth + 1,
                        },
                    )?;
                }
                map.end()
            }
        }
    }
}

/// The entries of an object value, each key once with its last value, in
/// the order of those last occurrences.
fn last_of_each_key(entries: &[(String, Value)]) -> Vec<(&str, &Value)> {
    if entries.len() <= 16 {
        return entries
            .iter()
            .enumerate()
            .filter(|(i, (key, _))| !entries[i + 1..].iter().any(|(later, _)| later == key))
            .map(|(_, (key, value))| (key.as_str(), value))
            .collect();
    }
    let mut last = std::collections::HashMap::with_capacity(entries.len());
    for (i, (key, _)) in entries.iter().enumerate() {
        last.insert(key.as_str(), i);
    }
    entries
        .iter()
        .enumerate()
        .filter(|(i, (key, _))| last.get(key.as_str()) == Some(i))
        .map(|(_, (key, value))| (key.as_str(), value))
        .collect()
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &Value) -> String {
        serde_json::to_string(&Encode { value, depth: 0 }).unwrap()
    }

    #[test]
    fn a_repeated_key_in_an_object_value_is_written_once_with_its_last_value() {
        // Found by tests/prop_encode.rs: `{"a":1,"a":2}` is JSON whose
        // readers disagree (last wins, first wins, or an error).
        let object = |entries: Vec<(&str, Value)>| {
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            )
        };
        let value = object(vec![
            ("a", Value::I64(1)),
            ("b", Value::I64(2)),
            (
                "a",
                object(vec![("x", Value::Null), ("x", Value::Bool(true))]),
            ),
        ]);
        assert_eq!(encode(&value), r#"{"b":2,"a":{"x":true}}"#);
        let many = Value::Object(
            (0..40)
                .map(|i| (format!("k{}", i % 20), Value::I64(i)))
                .collect(),
        );
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&encode(&many)).unwrap();
        assert_eq!(parsed.len(), 20);
        assert_eq!(encode(&many).matches("\"k0\"").count(), 1);
        assert_eq!(parsed["k0"], 20);
    }

    #[test]
    fn non_finite_floats_become_strings() {
        assert_eq!(encode(&Value::F64(f64::NAN)), r#""NaN""#);
        assert_eq!(encode(&Value::F64(f64::INFINITY)), r#""Infinity""#);
        assert_eq!(encode(&Value::F64(f64::NEG_INFINITY)), r#""-Infinity""#);
        assert_eq!(encode(&Value::F64(469.74)), "469.74");
    }

    #[test]
    fn bytes_become_hex_and_lossy_utf8_replaces() {
        assert_eq!(encode(&Value::from(&b"\x00\xffA"[..])), r#""00ff41""#);
        assert_eq!(
            Value::from_utf8_lossy(b"ok\xffok"),
            Value::Str("ok\u{fffd}ok".into())
        );
    }

    #[test]
    fn wide_integers_fall_back_to_strings() {
        assert_eq!(
            Value::from(u128::MAX),
            Value::Str(u128::MAX.to_string().into())
        );
        assert_eq!(Value::from(-5i128), Value::I64(-5));
        assert_eq!(Value::from(u64::MAX as i128), Value::U64(u64::MAX));
    }

    #[test]
    fn deep_nesting_is_cut_at_the_limit_and_still_parses() {
        let mut value = Value::I64(1);
        for _ in 0..10_000 {
            value = Value::Array(vec![value].into());
        }
        let text = encode(&value);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut depth = 0;
        let mut cur = &parsed;
        while let Some(inner) = cur.as_array() {
            cur = &inner[0];
            depth += 1;
        }
        assert_eq!(depth, MAX_VALUE_DEPTH);
        assert_eq!(cur, DEPTH_MARKER);
        // Dropping 10,000 levels is fine; build deeper values iteratively if needed.
    }

    #[test]
    fn serde_values_convert_with_their_shape() {
        #[derive(serde::Serialize)]
        struct Item {
            sku: &'static str,
            qty: u32,
            price: f64,
        }
        let v = Value::from_serialize(&vec![Item {
            sku: "A1",
            qty: 2,
            price: 9.5,
        }]);
        assert_eq!(encode(&v), r#"[{"sku":"A1","qty":2,"price":9.5}]"#);
        let bad = std::collections::HashMap::from([((1, 2), 3)]);
        let v = Value::from_serialize(&bad);
        assert!(v.as_str().unwrap().starts_with("[unserializable: "));
    }
}
