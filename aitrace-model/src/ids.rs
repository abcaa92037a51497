//! W3C trace-context identifiers.

use std::fmt;
use std::num::NonZeroU64;

/// A 16-byte trace id, written as 32 lower-case hex digits. Never all zero.
///
/// # Examples
///
/// ```
/// use aitrace_model::TraceId;
///
/// let id = TraceId::random();
/// assert_eq!(id.to_string().len(), 32);
/// assert_eq!(TraceId::from_hex(&id.to_string()), Some(id));
/// assert_eq!(TraceId::from_hex("00000000000000000000000000000000"), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]); // bytes, not u128: align 1 keeps records small

/// An 8-byte span id, written as 16 lower-case hex digits. Never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(NonZeroU64);

impl TraceId {
    /// A new random id from a fast thread-local generator.
    #[inline]
    pub fn random() -> Self {
        TraceId(fastrand::u128(1..).to_be_bytes())
    }

    /// The id with these bytes, or `None` when they are all zero.
    #[inline]
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }

    /// The id's bytes, big-endian as on the wire.
    #[inline]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Parses exactly 32 hex digits; `None` for anything else or all zeros.
    #[inline]
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(hex, 16)
            .ok()
            .and_then(|n| TraceId::from_bytes(n.to_be_bytes()))
    }
}

impl SpanId {
    /// A new random id from a fast thread-local generator.
    #[inline]
    pub fn random() -> Self {
        // Any 64 bits, zero (one draw in 2^64) made 1: a bounded range
        // costs a multiply and a rejection test per id.
        SpanId(NonZeroU64::new(fastrand::u64(..)).unwrap_or(NonZeroU64::MIN))
    }

    /// The id with these bytes, or `None` when they are all zero.
    #[inline]
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        NonZeroU64::new(u64::from_be_bytes(bytes)).map(SpanId)
    }

    /// The id's bytes, big-endian as on the wire.
    #[inline]
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.get().to_be_bytes()
    }

    /// Parses exactly 16 hex digits; `None` for anything else or all zeros.
    #[inline]
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16)
            .ok()
            .and_then(NonZeroU64::new)
            .map(SpanId)
    }
}

/// Writes the lower-case hex digits of `bytes`, two a byte, into `out`
/// (as many bytes as `out` holds pairs): the one hex encoder of the crate,
/// for ids in `Display`, in JSON lines and in OTLP.
#[inline]
pub fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// The `N` lower-case hex digits of the first `N / 2` bytes of `bytes`.
#[inline]
pub fn hex<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    write_hex(bytes, &mut out);
    out
}

/// Hex digits as text (they are ASCII).
fn hex_str(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).unwrap_or_default()
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(hex_str(&hex::<32>(&self.0)))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(hex_str(&hex::<16>(&self.to_bytes())))
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let t = TraceId::from_hex("7902f7b02e9e2b9ce0c11a928f3e2153").unwrap();
        assert_eq!(t.to_string(), "7902f7b02e9e2b9ce0c11a928f3e2153");
        let s = SpanId::from_hex("00000000000000a1").unwrap();
        assert_eq!(s.to_string(), "00000000000000a1");
        for bad in ["", "xyz", "+902f7b02e9e2b9c", "0000000000000000"] {
            assert_eq!(SpanId::from_hex(bad), None, "{bad:?}");
        }
        assert_eq!(TraceId::from_bytes([0; 16]), None);
        assert_eq!(SpanId::from_bytes(s.to_bytes()), Some(s));
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(
            &hex::<16>(&[0x00, 0x0f, 0xa0, 0xff, 1, 2, 3, 0x7e]),
            b"000fa0ff0102037e"
        );
        // Only what fits.
        assert_eq!(&hex::<4>(&[0xab, 0xcd, 0xef]), b"abcd");
        let mut out = [b'.'; 6];
        write_hex(&[0x12], &mut out);
        assert_eq!(&out, b"12....");
        let id = TraceId::random();
        assert_eq!(
            id.to_string(),
            format!("{:032x}", u128::from_be_bytes(id.to_bytes()))
        );
        let span = SpanId::random();
        assert_eq!(
            span.to_string(),
            format!("{:016x}", u64::from_be_bytes(span.to_bytes()))
        );
    }

    #[test]
    fn random_ids_differ() {
        let a: Vec<_> = (0..1000).map(|_| SpanId::random()).collect();
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), a.len());
    }
}
