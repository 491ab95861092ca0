//! Kernel interfaces for sundial (placeholder until filled in).
