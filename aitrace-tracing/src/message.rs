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
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Mutex;

/// The most callsites whose message is kept.
pub(crate) const MAX_CALLSITES: usize = 8192;
/// The longest message kept.
const MAX_LEN: usize = 256;

/// Per callsite: its constant message, or `None` once it changed.
type Cache = HashMap<usize, Option<&'static str>>;

static SHARED: Mutex<Option<Cache>> = Mutex::new(None);

/// What a thread remembers of one callsite: its address and kept message
/// (`None`: the message changes, format it).
type Slot = Cell<(usize, Option<&'static str>)>;

const SLOTS: usize = 64;

thread_local! {
    /// The callsites this thread has seen lately, by address (a miss asks
    /// the shared map): one index and one comparison per event.
    static LOCAL: [Slot; SLOTS] = const { [const { Cell::new((0, None)) }; SLOTS] };
}

/// Compares what is formatted with `expected`, without keeping it.
struct Compare<'a> {
    expected: &'a [u8],
    at: usize,
    same: bool,
}

impl fmt::Write for Compare<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.at + text.len();
        if self.same && self.expected.get(self.at..end) == Some(text.as_bytes()) {
            self.at = end;
            Ok(())
        } else {
            self.same = false;
            Err(fmt::Error) // stop formatting: it differs
        }
    }
}

/// Whether `value` formats to exactly `kept`.
fn formats_to(value: &dyn fmt::Debug, kept: &str) -> bool {
    let mut compare = Compare {
        expected: kept.as_bytes(),
        at: 0,
        same: true,
    };
    write!(compare, "{value:?}").is_ok() && compare.same && compare.at == kept.len()
}

/// `value` formatted; a `Debug` that fails leaves what it wrote (no panic).
fn text_of(value: &dyn fmt::Debug) -> String {
    let mut text = String::new();
    let _ = write!(text, "{value:?}");
    text
}

/// The message `value` of the event at `callsite` (the address of its
/// static metadata).
pub(crate) fn message(callsite: usize, value: &dyn fmt::Debug) -> Cow<'static, str> {
    let slot = (callsite >> 4) % SLOTS;
    let known = LOCAL
        .try_with(|local| {
            let (address, known) = local[slot].get();
            if address == callsite {
                return known;
            }
            let known = shared(callsite, value);
            local[slot].set((callsite, known));
            known
        })
        .unwrap_or(None);
    match known {
        Some(kept) if formats_to(value, kept) => Cow::Borrowed(kept),
        Some(_) => {
            // The message changed: stop comparing at this callsite.
            let _ = LOCAL.try_with(|local| local[slot].set((callsite, None)));
            if let Ok(mut shared) = SHARED.lock() {
                shared
                    .get_or_insert_with(HashMap::new)
                    .insert(callsite, None);
            }
            Cow::Owned(text_of(value))
        }
        None => Cow::Owned(text_of(value)),
    }
}

/// The process-wide entry of a callsite, made from `value`'s text on first
/// sight.
fn shared(callsite: usize, value: &dyn fmt::Debug) -> Option<&'static str> {
    let text = text_of(value);
    let Ok(mut shared) = SHARED.lock() else {
        return None;
    };
    let shared = shared.get_or_insert_with(HashMap::new);
    if let Some(known) = shared.get(&callsite) {
        return *known;
    }
    if shared.len() >= MAX_CALLSITES || text.len() > MAX_LEN {
        return None;
    }
    let kept: &'static str = Box::leak(text.into_boxed_str());
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
    fn a_message_that_only_starts_or_ends_like_the_kept_one_is_its_own() {
        for (site, other) in [(0x4000, "ab"), (0x4100, "abcd"), (0x4200, "abd")] {
            assert!(matches!(
                message(site, &format_args!("abc")),
                Cow::Borrowed("abc")
            ));
            let m = message(site, &format_args!("{other}"));
            assert_eq!(m, other);
            assert!(matches!(m, Cow::Owned(_)));
        }
    }

    #[test]
    fn a_debug_that_fails_gives_what_it_wrote_without_panicking() {
        struct Fails;
        impl fmt::Debug for Fails {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("part")?;
                Err(fmt::Error)
            }
        }
        for _ in 0..3 {
            assert_eq!(message(0x5000, &Fails), "part");
        }
    }

    #[test]
    fn a_long_message_is_not_kept() {
        let long = "x".repeat(MAX_LEN + 1);
        let m = message(0x3000, &format_args!("{long}"));
        assert!(matches!(m, Cow::Owned(_)));
        assert_eq!(m, long);
    }
}
