//! A record's user fields: the first few inside the record, more on the heap.
//!
//! Most events carry a handful of fields. Keeping up to [`INLINE_FIELDS`]
//! of them inside the record means capturing such an event allocates
//! nothing, and no other thread has to free its memory later (with glibc,
//! freeing another thread's allocation waits on that thread's arena lock:
//! the background sender did, on every record).

use std::borrow::Cow;

use crate::value::Value;

/// How many fields a record holds without a heap allocation.
pub(crate) const INLINE_FIELDS: usize = 3;

pub(crate) type Field = (Cow<'static, str>, Value);

/// The fields, in the order they were added.
#[derive(Clone)]
pub(crate) enum Fields {
    Inline {
        len: u8,
        items: [Field; INLINE_FIELDS],
    },
    Heap(Vec<Field>),
}

const EMPTY: Field = (Cow::Borrowed(""), Value::Null);

impl Default for Fields {
    #[inline]
    fn default() -> Self {
        Fields::Inline {
            len: 0,
            items: [EMPTY; INLINE_FIELDS],
        }
    }
}

impl Fields {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Field] {
        match self {
            Fields::Inline { len, items } => &items[..usize::from(*len)],
            Fields::Heap(v) => v,
        }
    }

    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [Field] {
        match self {
            Fields::Inline { len, items } => &mut items[..usize::from(*len)],
            Fields::Heap(v) => v,
        }
    }

    #[inline]
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, (key, value): Field) {
        match self {
            Fields::Inline { len, items } if usize::from(*len) < INLINE_FIELDS => {
                // The slot holds `EMPTY`, which owns nothing: forgetting it
                // saves the call that would drop it. Key and value are
                // stored apart, each straight into the slot: a whole field
                // assembled on the stack first was read back before its
                // parts were written (a store-forwarding stall per field).
                let slot = &mut items[usize::from(*len)];
                std::mem::forget(std::mem::replace(&mut slot.0, key));
                std::mem::forget(std::mem::replace(&mut slot.1, value));
                *len += 1;
            }
            _ => {
                self.reserve(1);
                if let Fields::Heap(v) = self {
                    v.push((key, value));
                }
            }
        }
    }

    /// Makes room for `n` more; past the inline room the fields move to the
    /// heap, with room for all of them.
    #[inline]
    pub(crate) fn reserve(&mut self, n: usize) {
        match self {
            Fields::Inline { len, items } => {
                let len = usize::from(*len);
                if len + n <= INLINE_FIELDS {
                    return;
                }
                let mut heap = Vec::with_capacity((len + n).max(2 * INLINE_FIELDS));
                heap.extend(items[..len].iter_mut().map(|f| std::mem::replace(f, EMPTY)));
                *self = Fields::Heap(heap);
            }
            Fields::Heap(v) => v.reserve(n),
        }
    }

    /// Keeps only the fields `keep` says to, in order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Field) -> bool) {
        match self {
            Fields::Inline { len, items } => {
                let mut kept = 0;
                for i in 0..usize::from(*len) {
                    if keep(&items[i]) {
                        items.swap(kept, i);
                        kept += 1;
                    }
                }
                for item in &mut items[kept..usize::from(*len)] {
                    *item = EMPTY;
                }
                *len = kept as u8;
            }
            Fields::Heap(v) => v.retain(|f| keep(f)),
        }
    }

    /// Heap bytes of the list itself (not of the keys and values).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Fields::Inline { .. } => 0,
            Fields::Heap(v) => v.capacity() * size_of::<Field>(),
        }
    }
}

impl From<Vec<Field>> for Fields {
    #[inline]
    fn from(v: Vec<Field>) -> Self {
        if v.len() <= INLINE_FIELDS && v.capacity() <= INLINE_FIELDS {
            let mut fields = Fields::default();
            for f in v {
                fields.push(f);
            }
            fields
        } else {
            Fields::Heap(v)
        }
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(i: usize) -> Field {
        (Cow::Owned(format!("k{i}")), Value::from(i))
    }

    #[test]
    fn the_first_fields_stay_inline_and_more_move_to_the_heap_in_order() {
        let mut fields = Fields::default();
        for i in 0..INLINE_FIELDS {
            fields.push(field(i));
            assert!(matches!(fields, Fields::Inline { .. }));
        }
        fields.push(field(INLINE_FIELDS));
        assert!(matches!(fields, Fields::Heap(_)));
        let keys: Vec<String> = fields
            .as_slice()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k3"]);
    }

    #[test]
    fn retain_keeps_order_inline_and_on_the_heap() {
        for n in [INLINE_FIELDS, INLINE_FIELDS + 3] {
            let mut fields = Fields::default();
            for i in 0..n {
                fields.push(field(i));
            }
            fields.retain(|(k, _)| k != "k1");
            let keys: Vec<&str> = fields.as_slice().iter().map(|(k, _)| k.as_ref()).collect();
            let want: Vec<String> = (0..n)
                .filter(|i| *i != 1)
                .map(|i| format!("k{i}"))
                .collect();
            assert_eq!(keys, want);
            fields.push(field(99));
            assert_eq!(fields.len(), n);
        }
    }
}
