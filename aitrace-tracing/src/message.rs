//! Event messages without an allocation per event.
//!
//! A `tracing` event's message is a `fmt::Arguments` handed to the layer as
//! `&dyn Debug`, so it has to be formatted. Most callsites log a constant
//! message (`info!(order_id, "checkout_started")`): the first message of
//! each callsite is kept as a `&'static str` (leaked once, for at most
//! [`MAX_CALLSITES`] callsites in the process, like tracing's own callsite
//! registry), and later events whose message is the same text borrow it.
//! A callsite whose message changes is remembered as such and its messages
//! are owned strings, as before.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// The most callsites whose message is kept.
pub(crate) const MAX_CALLSITES: usize = 8192;
/// The longest message kept.
const MAX_LEN: usize = 256;

/// Per callsite: its constant message, or `None` once it changed.
type Cache = HashMap<usize, Option<&'static str>, BuildHasherDefault<AddressHasher>>;

/// Hashes a callsite address with one multiplication: the keys are
/// addresses of statics, not chosen by anyone who could make them collide,
/// and SipHash was a tenth of capturing an event.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        // The table uses both ends of the hash; the product's low bits are
        // as poor as the address's (statics are aligned), so fold the high
        // half in.
        let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

static SHARED: Mutex<Option<Cache>> = Mutex::new(None);

thread_local! {
    /// This thread's copy of what it has looked up, and a buffer to format in.
    static LOCAL: RefCell<(Cache, String)> = RefCell::new((Cache::default(), String::new()));
}

/// The message `value` of the event at `callsite` (the address of its
/// static metadata).
pub(crate) fn message(callsite: usize, value: &dyn fmt::Debug) -> Cow<'static, str> {
    LOCAL
        .try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return Cow::Owned(format!("{value:?}")); // formatting logged
            };
            let (cache, text) = &mut *local;
            text.clear();
            let _ = write!(text, "{value:?}");
            let known = match cache.get(&callsite) {
                Some(known) => *known,
                None => {
                    let known = shared(callsite, text);
                    cache.insert(callsite, known);
                    known
                }
            };
            match known {
                Some(kept) if kept == text.as_str() => Cow::Borrowed(kept),
                Some(_) => {
                    // The message changed: stop comparing at this callsite.
                    cache.insert(callsite, None);
                    if let Ok(mut shared) = SHARED.lock() {
                        shared
                            .get_or_insert_with(Cache::default)
                            .insert(callsite, None);
                    }
                    Cow::Owned(text.clone())
                }
                None => Cow::Owned(text.clone()),
            }
        })
        .unwrap_or_else(|_| Cow::Owned(format!("{value:?}")))
}

/// The process-wide entry of a callsite, made from `text` on first sight.
fn shared(callsite: usize, text: &str) -> Option<&'static str> {
    let Ok(mut shared) = SHARED.lock() else {
        return None;
    };
    let shared = shared.get_or_insert_with(Cache::default);
    if let Some(known) = shared.get(&callsite) {
        return *known;
    }
    if shared.len() >= MAX_CALLSITES || text.len() > MAX_LEN {
        return None;
    }
    let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
    shared.insert(callsite, Some(kept));
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_message_is_borrowed_and_a_changing_one_owned() {
        let site = 0x1000;
        assert!(matches!(
            message(site, &format_args!("same")),
            Cow::Borrowed("same")
        ));
        assert!(matches!(
            message(site, &format_args!("same")),
            Cow::Borrowed("same")
        ));
        let other = 0x2000;
        for i in 0..3 {
            let m = message(other, &format_args!("n={i}"));
            assert_eq!(m, format!("n={i}"));
            if i > 0 {
                assert!(matches!(m, Cow::Owned(_)), "{m:?}");
            }
        }
        // Another thread sees the same kept text.
        std::thread::spawn(move || {
            assert!(matches!(
                message(site, &format_args!("same")),
                Cow::Borrowed("same")
            ));
            assert!(matches!(
                message(other, &format_args!("n=9")),
                Cow::Owned(_)
            ));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_long_message_is_not_kept() {
        let long = "x".repeat(MAX_LEN + 1);
        let m = message(0x3000, &format_args!("{long}"));
        assert!(matches!(m, Cow::Owned(_)));
        assert_eq!(m, long);
    }
}
