//! Shared helpers for integration tests (`mod support;`).
pub mod helper;
pub mod podc;
pub mod systemd;
