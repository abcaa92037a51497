//! aitrace adapter for `log` (in progress).
