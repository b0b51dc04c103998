//! `podc-pause`: the small helpers systemd runs for podc, in one statically
//! linked binary so a single file can be bound into every container root.
//!
//! - `podc-pause [infra] --pod-id ID ...`: the pod's infra process (see
//!   `podc::infra`), the `ExecStart=` of the pod's `Type=notify` infra unit.
//! - `podc-pause join ... -- CMD ...`: enter the pod's UTS/PID namespaces and
//!   exec the container command (see `podc::join`).
//!
//! A separate binary rather than hidden `podc` subcommands: `podc` carries
//! clap, serde, templates and D-Bus, is dynamically linked, and would cost
//! megabytes of RSS per pod and a set of shared libraries inside every
//! container root. This one is a hand-parsed, static file.
use std::ffi::OsString;

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mode = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let code = match mode {
        "join" => {
            args.remove(0);
            match podc::join::JoinConfig::from_args(args) {
                Ok(cfg) => podc::join::run(&cfg),
                Err(e) => usage(&e, podc::join::USAGE),
            }
        }
        "-h" | "--help" => {
            println!("{}\n{}", podc::infra::USAGE, podc::join::USAGE);
            0
        }
        _ => {
            if mode == "infra" {
                args.remove(0);
            }
            match podc::infra::Config::from_args(args) {
                Ok(cfg) => podc::infra::run(&cfg),
                Err(e) => usage(&e, podc::infra::USAGE),
            }
        }
    };
    std::process::exit(code);
}

fn usage(err: &str, usage: &str) -> i32 {
    eprintln!("podc-pause: {err}\n{usage}");
    2
}
