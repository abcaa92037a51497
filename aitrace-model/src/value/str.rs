//! [`Str`]: the string of a [`Value::Str`](crate::Value::Str), kept inline
//! when short.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{Hash, Hasher};

/// The longest string kept inline, without a heap allocation.
pub const INLINE_STR_LEN: usize = 22;

/// A string field value: up to [`INLINE_STR_LEN`] bytes are stored inside
/// the value itself, longer ones on the heap.
///
/// Most field values are short (ids, names, statuses), and capturing them
/// without an allocation is much of what makes capture cheap. It reads as a
/// `&str` ([`Deref`](std::ops::Deref)), compares with strings and converts
/// from every string type.
///
/// ```
/// use aitrace_model::{Str, Value};
///
/// let user = Str::from("u2");
/// assert_eq!(user, "u2");
/// assert!(user.is_inline());
/// assert_eq!(Value::from("u2"), Value::Str(user));
/// assert!(!Str::from("a string longer than twenty-two bytes").is_inline());
/// ```
#[derive(Clone)]
pub struct Str(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_STR_LEN],
    },
    Heap(Box<str>),
}

impl Str {
    /// The string, as `&str`.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Built from a `&str` cut at its length: always UTF-8.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }

    /// Whether it is stored inline (no heap memory).
    #[inline]
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    #[inline]
    fn inline(s: &str) -> Option<Self> {
        if s.len() > INLINE_STR_LEN {
            return None;
        }
        let mut bytes = [0; INLINE_STR_LEN];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Str(Repr::Inline {
            len: s.len() as u8,
            bytes,
        }))
    }

    /// Bytes of heap memory it owns.
    pub fn heap_size(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Heap(s) => s.len(),
        }
    }
}

impl std::ops::Deref for Str {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    #[inline]
    fn as_ref(&self) -> &str {
        self
    }
}

impl Borrow<str> for Str {
    #[inline]
    fn borrow(&self) -> &str {
        self
    }
}

impl From<&str> for Str {
    #[inline]
    fn from(s: &str) -> Self {
        Str::inline(s).unwrap_or_else(|| Str(Repr::Heap(s.into())))
    }
}

impl From<String> for Str {
    #[inline]
    fn from(s: String) -> Self {
        Str::inline(&s).unwrap_or_else(|| Str(Repr::Heap(s.into_boxed_str())))
    }
}

impl From<&String> for Str {
    #[inline]
    fn from(s: &String) -> Self {
        Str::from(s.as_str())
    }
}

impl From<Box<str>> for Str {
    #[inline]
    fn from(s: Box<str>) -> Self {
        match Str::inline(&s) {
            Some(inline) => inline,
            None => Str(Repr::Heap(s)),
        }
    }
}

impl From<Cow<'_, str>> for Str {
    #[inline]
    fn from(s: Cow<'_, str>) -> Self {
        match s {
            Cow::Borrowed(s) => Str::from(s),
            Cow::Owned(s) => Str::from(s),
        }
    }
}

impl From<Str> for String {
    #[inline]
    fn from(s: Str) -> Self {
        match s.0 {
            Repr::Heap(s) => s.into_string(),
            Repr::Inline { .. } => s.as_str().to_owned(),
        }
    }
}

impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    #[inline]
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    #[inline]
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Str> for str {
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Str> for &str {
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        *self == other.as_str()
    }
}

impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_read_back_whole() {
        for s in ["", "u2", "é€𝄞", &"x".repeat(INLINE_STR_LEN)] {
            let v = Str::from(s);
            assert!(v.is_inline(), "{s:?}");
            assert_eq!(v.as_str(), s);
            assert_eq!(Str::from(s.to_owned()), v);
            assert_eq!(v.heap_size(), 0);
        }
        let long = "y".repeat(INLINE_STR_LEN + 1);
        let v = Str::from(long.clone());
        assert!(!v.is_inline());
        assert_eq!(v, long.as_str());
        assert_eq!(String::from(v), long);
        assert_eq!(size_of::<Str>(), 24);
    }
}
