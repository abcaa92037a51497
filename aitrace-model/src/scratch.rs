//! Byte buffers a thread keeps between uses (request bodies, encoding
//! scratch), so a steady stream of batches does not allocate one each time.

use std::cell::RefCell;
use std::thread::LocalKey;

/// The largest request body a thread keeps for reuse.
pub const MAX_KEPT_BODY: usize = 8 << 20;

/// A thread's reusable buffer: declare one per use with
/// `thread_local! { static NAME: Scratch = const { Scratch::new(Vec::new()) }; }`.
pub type Scratch = RefCell<Vec<u8>>;

/// Runs `f` with `slot`'s buffer, emptied; a buffer that grew past `max`
/// bytes is let go afterwards. If the buffer is in use (a nested call) or
/// the thread is ending, `f` gets a fresh one.
pub fn with_scratch<R>(
    slot: &'static LocalKey<Scratch>,
    max: usize,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    let mut f = Some(f);
    let reused = slot.try_with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        buf.clear();
        let out = (f.take()?)(&mut buf);
        if buf.capacity() > max {
            *buf = Vec::new();
        }
        Some(out)
    });
    match (reused, f) {
        (Ok(Some(out)), _) => out,
        (_, Some(f)) => f(&mut Vec::new()),
        (_, None) => unreachable!("`f` ran and returned"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static SLOT: Scratch = const { Scratch::new(Vec::new()) };
    }

    #[test]
    fn the_buffer_is_reused_emptied_and_dropped_when_too_big() {
        let at = with_scratch(&SLOT, 64, |buf| {
            buf.extend_from_slice(b"abc");
            buf.as_ptr()
        });
        with_scratch(&SLOT, 64, |buf| {
            assert!(buf.is_empty());
            assert_eq!(buf.as_ptr(), at, "the same allocation");
            buf.resize(1000, 0);
        });
        with_scratch(&SLOT, 64, |buf| assert_eq!(buf.capacity(), 0, "let go"));
        // A nested use gets its own buffer instead of panicking.
        with_scratch(&SLOT, 64, |outer| {
            outer.push(1);
            with_scratch(&SLOT, 64, |inner| {
                assert!(inner.is_empty());
                inner.push(2);
            });
            assert_eq!(outer, &[1]);
        });
    }
}
