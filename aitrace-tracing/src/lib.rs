//! aitrace adapter for `tracing` (in progress).
