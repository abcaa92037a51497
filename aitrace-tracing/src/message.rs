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

/// What is known of a callsite's message.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    /// Every event so far had this text.
    Kept(&'static str),
    /// It changed (or is too long to keep): format it.
    Varies,
}

/// Per callsite address, process-wide.
type Cache = HashMap<usize, Known>;

static SHARED: Mutex<Option<Cache>> = Mutex::new(None);

/// One callsite a thread remembers: its address and what is known.
type Slot = Cell<(usize, Known)>;

/// Pairs of slots (two ways per set).
const SETS: usize = 64;

thread_local! {
    /// The callsites this thread has seen lately, two per set of their
    /// address (most recent first): an index and a comparison or two per
    /// event; a miss asks the shared map, without formatting anything.
    static LOCAL: [Slot; 2 * SETS] =
        const { [const { Cell::new((0, Known::Varies)) }; 2 * SETS] };
}

/// Compares what is formatted with the kept text while it matches, and
/// from the first difference keeps the text instead: one formatting pass,
/// and a writer that never fails (a `Display` may unwrap its writes).
struct Compare {
    kept: &'static str,
    at: usize,
    text: Option<String>,
}

impl fmt::Write for Compare {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        match &mut self.text {
            Some(text) => text.push_str(part),
            None => {
                let end = self.at + part.len();
                if self.kept.as_bytes().get(self.at..end) == Some(part.as_bytes()) {
                    self.at = end;
                } else {
                    // `at` ends a run of whole `&str`s: a char boundary.
                    let mut text = String::with_capacity(end);
                    text.push_str(self.kept.get(..self.at).unwrap_or_default());
                    text.push_str(part);
                    self.text = Some(text);
                }
            }
        }
        Ok(())
    }
}

/// `value` formatted; a `Debug` that fails leaves what it wrote (no panic).
fn text_of(value: &dyn fmt::Debug) -> String {
    let mut text = String::new();
    let _ = write!(text, "{value:?}");
    text
}

/// The message `value` of the event at `callsite` (the address of its
/// static metadata). `value` is formatted exactly once.
pub(crate) fn message(callsite: usize, value: &dyn fmt::Debug) -> Cow<'static, str> {
    match lookup(callsite) {
        Some(Known::Kept(kept)) => {
            let mut compare = Compare {
                kept,
                at: 0,
                text: None,
            };
            let _ = write!(compare, "{value:?}");
            match compare.text {
                None if compare.at == kept.len() => Cow::Borrowed(kept),
                text => {
                    // The message changed: stop comparing at this callsite.
                    remember(callsite, None);
                    Cow::Owned(text.unwrap_or_else(|| kept[..compare.at].to_owned()))
                }
            }
        }
        Some(Known::Varies) => Cow::Owned(text_of(value)),
        None => {
            let text = text_of(value);
            match remember(callsite, Some(&text)) {
                Known::Kept(kept) if kept == text => Cow::Borrowed(kept),
                _ => Cow::Owned(text),
            }
        }
    }
}

/// What this thread, else the process, knows of `callsite`.
fn lookup(callsite: usize) -> Option<Known> {
    let local = LOCAL.try_with(|local| {
        let set = &local[set_of(callsite)..][..2];
        let at = set.iter().position(|slot| slot.get().0 == callsite)?;
        let hit = set[at].get().1;
        if at > 0 {
            put_first(set, callsite, hit);
        }
        Some(hit)
    });
    match local {
        Ok(Some(known)) => Some(known),
        _ => {
            let shared = SHARED.lock().ok()?;
            let known = shared.as_ref()?.get(&callsite).copied()?;
            let _ =
                LOCAL.try_with(|local| put_first(&local[set_of(callsite)..][..2], callsite, known));
            Some(known)
        }
    }
}

/// The first of the two slots of `callsite`'s set in [`LOCAL`].
fn set_of(callsite: usize) -> usize {
    (callsite >> 4) % SETS * 2
}

/// Makes `callsite` the first (most recent) entry of its two-slot `set`,
/// the other entry second: the slot that held it, or the older one, goes.
fn put_first(set: &[Slot], callsite: usize, known: Known) {
    if set[0].get().0 != callsite {
        set[1].set(set[0].get());
    }
    set[0].set((callsite, known));
}

/// Records what was seen at `callsite` (its first text, or `None`: it
/// changed), process-wide and on this thread, and returns what is in
/// force: a text kept first (by another thread) stays, a change wins over a
/// text. A text is kept (copied once, for good) only while fewer than
/// [`MAX_CALLSITES`] callsites are and if it is at most [`MAX_LEN`] bytes;
/// otherwise the callsite counts as varying.
fn remember(callsite: usize, seen: Option<&str>) -> Known {
    let known = match SHARED.lock() {
        Ok(mut shared) => {
            let shared = shared.get_or_insert_with(HashMap::new);
            match (shared.get(&callsite).copied(), seen) {
                (Some(Known::Kept(kept)), Some(_)) => Known::Kept(kept),
                (Some(Known::Varies), _) => Known::Varies,
                (None, Some(text)) if shared.len() < MAX_CALLSITES && text.len() <= MAX_LEN => {
                    let kept = Known::Kept(Box::leak(text.to_owned().into_boxed_str()));
                    shared.insert(callsite, kept);
                    kept
                }
                (None, Some(_)) => Known::Varies, // not recorded: the map stays bounded
                (_, None) => {
                    shared.insert(callsite, Known::Varies);
                    Known::Varies
                }
            }
        }
        Err(_) => Known::Varies,
    };
    let _ = LOCAL.try_with(|local| put_first(&local[set_of(callsite)..][..2], callsite, known));
    known
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

    /// Formats as "once" the first time and panics after, like itertools'
    /// `Format`.
    struct Once(Cell<bool>);
    impl fmt::Debug for Once {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            assert!(!self.0.replace(true), "formatted twice");
            f.write_str("once")
        }
    }

    #[test]
    fn every_event_formats_its_message_exactly_once() {
        let site = 0x6000;
        // First sight, then kept and equal, then kept and different.
        for text in ["once", "once"] {
            let m = message(site, &Once(Cell::new(false)));
            assert_eq!(m, text);
        }
        struct Other(Cell<bool>);
        impl fmt::Debug for Other {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                assert!(!self.0.replace(true), "formatted twice");
                f.write_str("on")?;
                f.write_str("ce more")
            }
        }
        assert_eq!(message(site, &Other(Cell::new(false))), "once more");
        assert_eq!(message(site, &Once(Cell::new(false))), "once");
    }

    #[test]
    fn a_display_that_unwraps_its_writes_does_not_panic_when_the_text_changes() {
        struct Unwraps(&'static str);
        impl fmt::Debug for Unwraps {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for part in self.0.split_inclusive(' ') {
                    f.write_str(part).unwrap();
                }
                Ok(())
            }
        }
        let site = 0x7000;
        assert_eq!(message(site, &Unwraps("a b c")), "a b c");
        assert_eq!(message(site, &Unwraps("a x c")), "a x c");
    }

    #[test]
    fn callsites_that_share_a_set_each_keep_their_own_message() {
        // Same set (address >> 4 modulo SETS), three of them for two ways.
        let sites = [0x8000, 0x8000 + 16 * SETS, 0x8000 + 32 * SETS];
        for round in 0..4 {
            for (i, site) in sites.iter().enumerate() {
                let text = format!("site {i}");
                let m = message(*site, &format_args!("{text}"));
                assert_eq!(m, text, "round {round}");
                if round > 0 {
                    assert!(matches!(m, Cow::Borrowed(_)), "round {round}: {m:?}");
                }
            }
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
