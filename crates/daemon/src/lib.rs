//! sundial daemon library.
