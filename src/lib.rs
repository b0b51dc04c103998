//! podc: compile Kubernetes Pod manifests into plain systemd units and run
//! them on one host, with systemd as the only supervisor.

pub mod image;
