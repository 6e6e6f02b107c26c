//! Callbacks of the compat APIs (placeholder).
