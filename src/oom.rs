//! `podc-pause oom-check`: did the kernel OOM-kill a process of this
//! container? Run as the `ExecStopPost=-` of a container unit with a
//! memory limit, so it runs in the unit's cgroup after the container's
//! processes are gone but before systemd removes the cgroup.
//!
//! Why: systemd detects OOM kills only on the unified hierarchy (it
//! watches `memory.events`); on cgroup v1, systemd 252 reports a container
//! killed at its memory limit as `Result=signal`, status 9, like any
//! `kill -9`. The kernel does count the kills per memory cgroup
//! (`memory.oom_control`'s `oom_kill` on v1, `memory.events`' `oom_kill` on
//! v2), and the count dies with the cgroup, so it must be read here.
//!
//! The answer is the exit status, which systemd keeps with the unit
//! (`ExecStopPost=`'s status on D-Bus) until the unit starts again, so
//! `podc get`/`describe` read it without any file or monitor process:
//! 0 no OOM kill, [`OOM_KILLED`] one or more, 2 the cgroup could not be
//! read. The `-` prefix keeps a non-zero status from changing the unit's
//! result. A line on stderr tells the journal (and `podc logs`) too.

pub const USAGE: &str = "usage: podc-pause oom-check   (a container unit's ExecStopPost=-)";

/// Exit status meaning "the kernel OOM-killed a process of this unit".
pub const OOM_KILLED: i32 = 3;

pub fn run() -> i32 {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let Some(own) = read("/proc/self/cgroup") else {
        eprintln!("podc-pause oom-check: cannot read /proc/self/cgroup");
        return 2;
    };
    match oom_kills(&own, &read) {
        Some(k) if k.kills > 0 => {
            let limit = k
                .limit
                .map(|l| format!(" (memory limit {l} bytes)"))
                .unwrap_or_default();
            eprintln!(
                "podc: OOMKilled: the kernel's OOM killer killed {} process(es) of this container{limit}",
                k.kills
            );
            OOM_KILLED
        }
        Some(_) => 0,
        None => {
            eprintln!(
                "podc-pause oom-check: cannot read this unit's memory cgroup under /sys/fs/cgroup"
            );
            2
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Kills {
    pub kills: u64,
    pub limit: Option<u64>,
}

/// The OOM-kill count (and limit) of the memory cgroup named in
/// `/proc/self/cgroup` text, read through `read`: the v1 `memory`
/// hierarchy when there is one, else the unified one.
pub fn oom_kills(proc_cgroup: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<Kills> {
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            continue;
        }
        let path = path.trim_end_matches('/');
        if ctrls.split(',').any(|c| c == "memory") {
            let dir = format!("/sys/fs/cgroup/memory{path}");
            let kills = field(&read(&format!("{dir}/memory.oom_control"))?, "oom_kill")?;
            let limit =
                read(&format!("{dir}/memory.limit_in_bytes")).and_then(|t| t.trim().parse().ok());
            return Some(Kills { kills, limit });
        }
        if ctrls.is_empty() {
            unified = Some(path.to_string());
        }
    }
    let dir = format!("/sys/fs/cgroup{}", unified?);
    let kills = field(&read(&format!("{dir}/memory.events"))?, "oom_kill")?;
    let limit = read(&format!("{dir}/memory.max")).and_then(|t| t.trim().parse().ok());
    Some(Kills { kills, limit })
}

/// The value of a `name value` line of a cgroup key file.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn reader(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |p| m.get(p).cloned()
    }

    #[test]
    fn v1_memory_hierarchy_wins() {
        let cg = "12:pids:/a.slice/x.service\n4:memory:/a.slice/x.service\n1:name=systemd:/a.slice/x.service\n0::/a.slice/x.service\n";
        let r = reader(&[
            (
                "/sys/fs/cgroup/memory/a.slice/x.service/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            (
                "/sys/fs/cgroup/memory/a.slice/x.service/memory.limit_in_bytes",
                "33554432\n",
            ),
            (
                "/sys/fs/cgroup/a.slice/x.service/memory.events",
                "oom 0\noom_kill 0\n",
            ),
        ]);
        assert_eq!(
            oom_kills(cg, &r),
            Some(Kills {
                kills: 2,
                limit: Some(33554432)
            })
        );
    }

    #[test]
    fn unified_only() {
        let cg = "0::/a.slice/x.service\n";
        let r = reader(&[
            (
                "/sys/fs/cgroup/a.slice/x.service/memory.events",
                "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
            ),
            ("/sys/fs/cgroup/a.slice/x.service/memory.max", "max\n"),
        ]);
        assert_eq!(
            oom_kills(cg, &r),
            Some(Kills {
                kills: 1,
                limit: None
            })
        );
        // Unreadable or odd input: no answer, never a panic.
        assert_eq!(oom_kills(cg, &reader(&[])), None);
        assert_eq!(oom_kills("", &r), None);
        assert_eq!(oom_kills("garbage\n0::relative\n4:memory:/../x", &r), None);
    }
}
