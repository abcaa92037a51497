//! aitrace adapter for `slog` (in progress).
