//! podc: compile Kubernetes Pod manifests into plain systemd units and run
//! them on one host, with systemd as the only supervisor.

pub mod activate;
pub mod argv;
pub mod container_root;
pub mod diagnostic;
pub mod escape;
pub mod exec;
pub mod expand;
pub mod hook;
pub mod image;
pub mod infra;
pub mod install;
pub mod join;
pub mod load;
pub mod model;
pub mod names;
pub mod observe;
pub mod oom;
pub mod output;
pub mod perms;
pub mod pipeline;
pub mod plan;
pub mod quantity;
pub mod render;
pub mod rootfs;
pub mod schema;
pub mod systemd;
pub mod term;
pub mod untrusted;
pub mod validate;
pub mod volumes;
