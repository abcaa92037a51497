//! The re-entrancy flag: a thread that is delivering records never captures
//! any, so the sender's own logging (ureq and its TLS stack log through
//! `log`) cannot loop back into a buffer.

use std::cell::Cell;

thread_local! {
    static SENDING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is delivering records (a flush on this thread,
/// or one of the background delivery threads). Adapters check it to skip
/// work early; [`BufferedLogger::capture`](crate::BufferedLogger::capture)
/// already drops such records.
pub fn is_sending() -> bool {
    SENDING.with(Cell::get)
}

/// Marks the current thread as a sender for good (the background threads).
pub(crate) fn mark_sending_thread() {
    SENDING.with(|s| s.set(true));
}

/// Marks the current thread as a sender until dropped.
pub(crate) struct SendingGuard(bool);

impl SendingGuard {
    pub(crate) fn enter() -> Self {
        SendingGuard(SENDING.with(|s| s.replace(true)))
    }
}

impl Drop for SendingGuard {
    fn drop(&mut self) {
        let previous = self.0;
        SENDING.with(|s| s.set(previous));
    }
}
