//! Protobuf wire primitives: varints, keys (field number and wire type),
//! length-delimited and fixed-width fields, and the sizes of each, so a
//! message's length can be written before it without building it first.
//!
//! Small and called per attribute: each is `#[inline]`, so the writers in
//! the other files inline them as they did when all was one file.

/// Wire types.
pub(crate) const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// The size of `v` as a varint.
#[inline]
pub(crate) const fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
pub(crate) fn put_key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, u64::from(field << 3 | u32::from(wire)));
}

/// The size of a field's key.
#[inline]
pub(crate) const fn key_len(field: u32) -> usize {
    varint_len((field << 3) as u64)
}

/// The size of a `fixed64` field.
pub(crate) const fn fixed64_field(field: u32) -> usize {
    key_len(field) + 8
}

/// The size of a `fixed32` field.
pub(crate) const fn fixed32_field(field: u32) -> usize {
    key_len(field) + 4
}

/// The size of a varint field holding a value below 128 (an enum, a bool).
pub(crate) const fn small_varint_field(field: u32) -> usize {
    key_len(field) + 1
}

/// The size of a length-delimited field whose payload is `n` bytes.
#[inline]
pub(crate) fn len_field(field: u32, n: usize) -> usize {
    key_len(field) + varint_len(n as u64) + n
}

/// Writes the key and length of a length-delimited field whose payload of
/// `n` bytes the caller writes next.
#[inline]
pub(crate) fn put_len(buf: &mut Vec<u8>, field: u32, n: usize) {
    // Key and length gathered on the stack, then appended at once (not a
    // capacity check per byte).
    let mut bytes = [0u8; 15];
    let mut at = 0;
    for mut v in [u64::from(field << 3 | u32::from(LEN)), n as u64] {
        while v >= 0x80 {
            bytes[at] = (v as u8) | 0x80;
            v >>= 7;
            at += 1;
        }
        bytes[at] = v as u8;
        at += 1;
    }
    buf.extend_from_slice(&bytes[..at]);
}

#[inline]
pub(crate) fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_len(buf, field, bytes.len());
    buf.extend_from_slice(bytes);
}

#[inline]
pub(crate) fn put_fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_key(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put_fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    put_key(buf, field, FIXED32);
    buf.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_what_is_written() {
        for field in [1, 15, 16, 2047, 2048] {
            for n in [0usize, 1, 127, 128, 16_383, 16_384, 1 << 21] {
                let mut buf = Vec::new();
                put_len(&mut buf, field, n);
                assert_eq!(buf.len() + n, len_field(field, n), "{field} {n}");
            }
            let mut buf = Vec::new();
            put_fixed64(&mut buf, field, u64::MAX);
            assert_eq!(buf.len(), fixed64_field(field));
            buf.clear();
            put_fixed32(&mut buf, field, 1);
            assert_eq!(buf.len(), fixed32_field(field));
            buf.clear();
            put_key(&mut buf, field, VARINT);
            put_varint(&mut buf, 127);
            assert_eq!(buf.len(), small_varint_field(field));
        }
    }
}
