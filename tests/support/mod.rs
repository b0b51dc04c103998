//! Shared helpers for integration tests (`mod support;`).
pub mod systemd;
