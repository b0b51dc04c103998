//! `podc exec`: run a command in a running container as `kubectl exec`
//! does, with the container's namespaces, root, working directory, user,
//! supplementary groups, capabilities, `NoNewPrivileges` and cgroup (so its
//! device policy and limits). Nothing here runs a program found through a
//! search path or consults the container's environment: the command runs
//! through the joiner the unit itself starts (`ExecStart=`'s absolute
//! path, as systemd holds it), with an empty environment, and the
//! container's environment is handed over as data for the command only
//! (`--environ-fd`).
//!
//! The joiner options come from the unit's `ExecStart=` (written by root,
//! read from systemd over D-Bus), parsed with the joiner's own parser, so
//! exec gets exactly what the container's main process got. Not applied,
//! because podc sets none for containers: seccomp profiles and LSM
//! (AppArmor/SELinux) labels.

use crate::join::{JoinConfig, PidNs, CAPABILITIES};
use std::ffi::OsString;

/// The arguments after `podc-pause join` that run `command` in the
/// container whose main process is `main_pid`, from its unit's
/// `ExecStart=` argv (`[helper, "join", options..., "--", cmd...]`).
/// `environ_fd` is the inherited descriptor holding the environment.
pub fn joiner_args(
    exec_start: &[String],
    main_pid: u32,
    no_new_privs: bool,
    environ_fd: i32,
    command: &[String],
) -> Result<Vec<String>, String> {
    if exec_start.get(1).map(String::as_str) != Some("join") {
        return Err("the container's unit does not start it through podc-pause join".into());
    }
    // systemd keeps `$$` (podc's escape of `$`) until it runs the command.
    let args = exec_start[2..]
        .iter()
        .map(|a| OsString::from(a.replace("$$", "$")));
    let cfg = JoinConfig::from_args(args).map_err(|e| format!("the unit's ExecStart=: {e}"))?;
    let ns = |name: &str| format!("/proc/{main_pid}/ns/{name}");
    let mut j = vec!["--mnt".to_string(), ns("mnt"), "--net".into(), ns("net")];
    if cfg.pid != PidNs::Keep {
        j.extend(["--pid".into(), ns("pid")]);
    }
    for (opt, v) in [
        ("--uts", &cfg.uts),
        ("--ipc", &cfg.ipc),
        ("--cwd", &cfg.cwd),
    ] {
        if let Some(v) = v {
            j.extend([opt.to_string(), v.clone()]);
        }
    }
    if let Some((uid, gid)) = cfg.user {
        j.extend(["--user".into(), format!("{uid}:{gid}")]);
    }
    if !cfg.groups.is_empty() {
        let g: Vec<String> = cfg.groups.iter().map(u32::to_string).collect();
        j.extend(["--groups".into(), g.join(",")]);
    }
    if let Some(caps) = &cfg.caps {
        let names: Vec<&str> = caps
            .iter()
            .filter_map(|c| CAPABILITIES.get(*c as usize).copied())
            .collect();
        j.extend(["--caps".into(), names.join(",")]);
    }
    if cfg.non_root {
        j.push("--non-root".into());
    }
    if no_new_privs {
        j.push("--no-new-privs".into());
    }
    j.extend([
        "--wait".into(),
        "--environ-fd".into(),
        environ_fd.to_string(),
        "--".into(),
    ]);
    j.extend(command.iter().cloned());
    Ok(j)
}

/// Move this process into the cgroup of the container's unit, in every
/// hierarchy: where the unit's main process `main_pid` is, which must be
/// the unit's `ControlGroup` (`unit_cg`, from systemd) or a slice above it
/// (cgroup v1 controllers the unit does not use). So the command gets the
/// unit's device policy (v1 `devices`), limits and accounting, is killed
/// with the unit, and the joiner finds the container process in its own
/// cgroup. systemd's `AttachProcessesToUnit` would do this, but 252
/// refuses it for units without `Delegate=`.
pub fn join_unit_cgroup(unit_cg: &str, main_pid: u32) -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let mounts = read("/proc/self/mountinfo")?;
    let theirs = read(&format!("/proc/{main_pid}/cgroup"))?;
    let me = std::process::id().to_string();
    for dir in attach_targets(unit_cg, &theirs, &hierarchy_mounts(&mounts))? {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, &me).map_err(|e| format!("{}: {e}", procs.display()))?;
    }
    Ok(())
}

/// A cgroup hierarchy's mount: `None` for cgroup2, else a v1 mount's
/// options (its controllers or `name=systemd` among them); the mount point.
type Mount = (Option<Vec<String>>, String);

/// The cgroup hierarchies mounted here (their roots), from
/// `/proc/self/mountinfo`.
fn hierarchy_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let (root, point) = (*pre.get(3)?, *pre.get(4)?);
            if root != "/" || point.contains('\\') {
                return None;
            }
            let opts = |o: &str| o.split(',').map(String::from).collect();
            match *post.first()? {
                "cgroup2" => Some((None, point.to_string())),
                "cgroup" => Some((Some(opts(post.get(2)?)), point.to_string())),
                _ => None,
            }
        })
        .collect()
}

/// The directories to write our PID into: for each hierarchy line of the
/// main process's `/proc/PID/cgroup`, its path under that hierarchy's
/// mount, refused unless the path is `unit_cg` or one of its ancestors.
fn attach_targets(
    unit_cg: &str,
    proc_cgroup: &str,
    mounts: &[Mount],
) -> Result<Vec<std::path::PathBuf>, String> {
    if !unit_cg.starts_with('/') || unit_cg.split('/').any(|c| c == "..") {
        return Err(format!(
            "the unit's cgroup {unit_cg:?} is not a cgroup path"
        ));
    }
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let within = path == unit_cg
            || path == "/"
            || unit_cg
                .strip_prefix(path)
                .is_some_and(|r| r.starts_with('/'));
        if !within {
            return Err(format!(
                "the container's main process is in cgroup {path:?} ({ctl}), outside its unit's {unit_cg:?}"
            ));
        }
        // `0::PATH` is cgroup2's; a v1 line names its hierarchy by its
        // controllers (or name=), which no other hierarchy can have.
        let key: Vec<&str> = ctl.split(',').filter(|c| !c.is_empty()).collect();
        let mount = mounts.iter().find(|(opts, _)| match opts {
            None => key.is_empty(),
            Some(o) => !key.is_empty() && key.iter().all(|k| o.iter().any(|x| x == k)),
        });
        match mount {
            Some((_, point)) => {
                out.push(std::path::Path::new(point).join(path.trim_start_matches('/')))
            }
            None => return Err(format!("cgroup hierarchy {ctl:?} is not mounted")),
        }
    }
    if out.is_empty() {
        return Err("the container's main process has no cgroup".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str =
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,size=4096k,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn exec_joins_the_unit_s_cgroup_in_every_hierarchy_and_nothing_else() {
        let m = hierarchy_mounts(HYBRID);
        assert_eq!(m.len(), 4);
        let unit = "/p.slice/p_c.service";
        let cg = "4:cpu,cpuacct:/p.slice\n3:devices:/p.slice/p_c.service\n1:name=systemd:/p.slice/p_c.service\n0::/p.slice/p_c.service\n";
        let t = attach_targets(unit, cg, &m).unwrap();
        let t: Vec<String> = t.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            t,
            [
                "/sys/fs/cgroup/cpu,cpuacct/p.slice",
                "/sys/fs/cgroup/devices/p.slice/p_c.service",
                "/sys/fs/cgroup/systemd/p.slice/p_c.service",
                "/sys/fs/cgroup/unified/p.slice/p_c.service",
            ]
        );
        // A main process elsewhere (moved itself, or another unit's) is refused.
        for bad in [
            "0::/other.service\n",
            "0::/p.slice/p_c.service2\n",
            "0::/p.slice/p_c.service/../x\n",
        ] {
            assert!(attach_targets(unit, bad, &m).is_err(), "{bad}");
        }
        assert!(attach_targets("../x", "0::/\n", &m).is_err());
        assert!(
            attach_targets(unit, "7:memory:/p.slice\n", &m).is_err(),
            "not mounted"
        );
        // Pure cgroup v2.
        let v2 =
            hierarchy_mounts("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        let t = attach_targets(unit, "0::/p.slice/p_c.service\n", &v2).unwrap();
        assert_eq!(
            t,
            [std::path::PathBuf::from(
                "/sys/fs/cgroup/p.slice/p_c.service"
            )]
        );
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn exec_gets_the_main_process_s_identity_in_its_running_namespaces() {
        let start = s(&[
            "/usr/lib/podc/podc-pause",
            "join",
            "--rootfs",
            "/c",
            "--bind-ro",
            "/h",
            "/etc/hosts",
            "--ro-sys",
            "--mqueue",
            "--cwd",
            "/w$$x",
            "--uts",
            "/run/p/ns/uts",
            "--ipc",
            "/run/p/ns/ipc",
            "--new-pid",
            "--user",
            "1000:2000",
            "--groups",
            "3,4",
            "--caps",
            "CHOWN,KILL",
            "--non-root",
            "--",
            "sleep",
            "${SECRET}",
        ]);
        let j = joiner_args(&start, 42, true, 7, &s(&["id", "-u"])).unwrap();
        assert_eq!(
            j,
            s(&[
                "--mnt",
                "/proc/42/ns/mnt",
                "--net",
                "/proc/42/ns/net",
                "--pid",
                "/proc/42/ns/pid",
                "--uts",
                "/run/p/ns/uts",
                "--ipc",
                "/run/p/ns/ipc",
                "--cwd",
                "/w$x",
                "--user",
                "1000:2000",
                "--groups",
                "3,4",
                "--caps",
                "CHOWN,KILL",
                "--non-root",
                "--no-new-privs",
                "--wait",
                "--environ-fd",
                "7",
                "--",
                "id",
                "-u",
            ])
        );
        // The joiner's own parser accepts what it is given.
        let mut parsed = s(&["--mnt", "/proc/42/ns/mnt"]);
        parsed.extend(j.into_iter().skip(2));
        assert!(JoinConfig::from_args(parsed.into_iter().map(OsString::from)).is_ok());
        // hostPID: no PID namespace to enter; a root container keeps root.
        let start = s(&["/x/podc-pause", "join", "--rootfs", "/c", "--", "sh"]);
        let j = joiner_args(&start, 9, false, 3, &s(&["sh"])).unwrap();
        assert_eq!(
            j,
            s(&[
                "--mnt",
                "/proc/9/ns/mnt",
                "--net",
                "/proc/9/ns/net",
                "--wait",
                "--environ-fd",
                "3",
                "--",
                "sh"
            ])
        );
        assert!(joiner_args(&s(&["/bin/sh", "-c", "x"]), 9, false, 3, &s(&["sh"])).is_err());
    }
}
