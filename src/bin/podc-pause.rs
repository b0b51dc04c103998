//! `podc-pause`: the small helpers systemd runs for podc, in one statically
//! linked binary so a single file can be bound into every container root.
//!
//! - `podc-pause [infra] --pod-id ID ...`: the pod's infra process (see
//!   `podc::infra`), the `ExecStart=` of the pod's `Type=notify` infra unit.
//! - `podc-pause join ... -- CMD ...`: enter the pod's UTS/PID namespaces and
//!   exec the container command (see `podc::join`).
//! - `podc-pause hook http-get|tcp-socket|sleep ...`: lifecycle hook handlers
//!   (see `podc::hook`), runnable inside a container's root and network
//!   namespace, where the dynamically linked `podc` cannot run.
//! - `podc-pause release PID`: continue the container process the joiner
//!   handed to systemd stopped, in `Type=forking` units of older podc
//!   versions (their first `ExecStartPost=`); current units are
//!   `Type=notify` and need no release step.
//! - `podc-pause oom-check`: whether the kernel OOM-killed a process of
//!   the unit, as the exit status of a container's `ExecStopPost=-` (see
//!   `podc::oom`).
//!
//! A separate binary rather than hidden `podc` subcommands: `podc` carries
//! clap, serde, templates and D-Bus, is dynamically linked, and would cost
//! megabytes of RSS per pod and a set of shared libraries inside every
//! container root. This one is a hand-parsed, static file.
use std::ffi::OsString;

// The modules are compiled into this binary directly rather than used from
// the `podc` library: linking the library drags in code from its other
// dependencies (zbus, ...) that the linker cannot discard, which grew the
// text (and so the resident set) from 1.38 MB to 1.75 MB.
#[path = "../container_root.rs"]
mod container_root;
#[path = "../hook.rs"]
mod hook;
#[path = "../infra.rs"]
mod infra;
#[path = "../join.rs"]
mod join;
#[path = "../oom.rs"]
mod oom;
#[path = "../perms.rs"]
mod perms;

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mode = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let code = match mode {
        "join" => {
            args.remove(0);
            match join::JoinConfig::from_args(args) {
                Ok(cfg) => join::run(&cfg),
                Err(e) => usage(&e, join::USAGE),
            }
        }
        "hook" => {
            args.remove(0);
            hook::run_args(args)
        }
        "release" => join::release(&args[1..]),
        "oom-check" => oom::run(),
        "-h" | "--help" => {
            println!(
                "{}\n{}\n{}\n{}",
                infra::USAGE,
                join::USAGE,
                hook::USAGE,
                oom::USAGE
            );
            0
        }
        _ => {
            if mode == "infra" {
                args.remove(0);
            }
            match infra::Config::from_args(args) {
                Ok(cfg) => infra::run(&cfg),
                Err(e) => usage(&e, infra::USAGE),
            }
        }
    };
    std::process::exit(code);
}

fn usage(err: &str, usage: &str) -> i32 {
    eprintln!("podc-pause: {err}\n{usage}");
    2
}
