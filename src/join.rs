//! The container runtime step: `podc-pause join ... -- CMD ARGS...`, the
//! `ExecStart=` of every container service. systemd 252 has no directive
//! for the pod's hostname (UTS namespace) or a PID namespace, and its file
//! system sandboxing costs too much per unit (see
//! [`crate::container_root`]), so the unit gives the joiner the cgroup, the
//! pod's network namespace (`NetworkNamespacePath=`), the environment, the
//! device policy and the resource limits, and the joiner does the rest,
//! the IPC namespace included (see [`JoinConfig::ipc`]). It is a static binary
//! run from the host (`/usr/lib/podc/podc-pause`), with host paths as
//! arguments.
//!
//! Order of operations, and why:
//! 0. open the ns files named by host paths, and connect to
//!    `$NOTIFY_SOCKET`; then set up the container's root and pivot into it
//!    (`--rootfs`, [`crate::container_root`]).
//! 1. `setns` UTS: affects this process, so after exec the command's
//!    `hostname` is the pod's.
//! 2. PID: `setns` (shared pod namespace) or `unshare` (a container of its
//!    own) only changes the namespace of *children*. So the joiner clones
//!    once with `CLONE_PARENT`: the child's parent is then systemd itself,
//!    not the joiner. Because systemd is the real parent, it gets the exit
//!    status (`ExecMainStatus=`) by `waitid` as for any service. The unit is
//!    `Type=notify`: the joiner sends `MAINPID=<child>` and `READY=1` to
//!    `$NOTIFY_SOCKET`, then waits on a barrier (`BARRIER=1` with a pipe's
//!    write end, the `sd_notify_barrier(3)` protocol: systemd closes it once
//!    it has processed every earlier message), and only then lets the child
//!    go on (the child blocks reading a pipe the joiner closes) and exits.
//!    So the command cannot exit before systemd knows it as the main
//!    process: a command that failed at once would otherwise lose its exit
//!    status (systemd 252 then finds no main PID and records success). No
//!    extra exec per start, and no process stays behind to monitor the
//!    container. A plain fork would not do: when the joiner exits, its child
//!    would be reparented to the PID namespace's init (the pod's pause), and
//!    systemd would never learn the exit status.
//!    Without `$NOTIFY_SOCKET` (a `Type=forking` unit of an older podc,
//!    which has no `--rootfs`) the joiner stops the child and exits once it
//!    is stopped; the unit's first `ExecStartPost=` (`podc-pause release
//!    ${MAINPID}`) continues it, after `GuessMainPID=` adopted it. With
//!    `--rootfs` a PID namespace needs `Type=notify`.
//! 3. In a new or joined PID namespace, mount the container's `/proc`; the
//!    child does this since a procfs instance belongs to its mounter's PID
//!    ns. For a container that is not privileged, the paths that container
//!    runtimes keep read-only (`/proc/sys`, `/proc/sysrq-trigger`,
//!    `/proc/irq`, `/proc/bus`, `/proc/fs`) are made read-only and the ones
//!    containerd masks (`/proc/kcore`, `/proc/keys`, ...) masked
//!    ([`container_root::confine_proc`]; in the host PID namespace, right
//!    after the root is set up).
//! 4. Capabilities (`--caps NAME,...`): the joiner itself needs
//!    CAP_SYS_ADMIN, so the unit cannot narrow `CapabilityBoundingSet=` to
//!    the container's set; the joiner drops every other capability from the
//!    bounding set before exec (for a root container this is what limits
//!    its capabilities to Kubernetes' defaults plus `add` minus `drop`).
//! 5. Drop to the container user (`--user UID[:GID]`): `setns` needs
//!    CAP_SYS_ADMIN, so the unit runs the joiner as root and must not set
//!    `User=`; the joiner drops privileges itself, right before exec.
//! 6. `execvp` the command (resolved with the container's `PATH`).
//!
//! Exec hooks (postStart as `ExecStartPost=`, preStop as `ExecStop=`) go
//! through the joiner too, so they run as `kubectl exec` would, in the
//! running container's file system, hostname and processes:
//! `--mnt /proc/${MAINPID}/ns/mnt --pid /proc/${MAINPID}/ns/pid --wait`.
//! systemd sets `$MAINPID` for these commands, which start on the host,
//! where those paths name the container's namespaces. `--wait` keeps the
//! joiner as the control process until the hook ends, with its status.

use std::ffi::{CString, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;

use crate::container_root::{self, Bind, RootConfig};
use nix::libc;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{execvp, setgid, setgroups, setuid, Gid, Uid};

/// What PID namespace the command gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidNs {
    /// Stay in the service's (host) PID namespace.
    Keep,
    /// Join the pod's (`shareProcessNamespace: true`).
    Join(String),
    /// A new one of its own, the command as its PID 1 (Kubernetes default).
    New,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinConfig {
    pub uts: Option<String>,
    /// The pod's IPC namespace (`--ipc NSFILE`). Not the unit's
    /// `IPCNamespacePath=`: with it, systemd 252 gives the unit a mount
    /// namespace of its own (to mount the namespace's mqueue), with all
    /// the rereading of the host's mount table that the joiner avoids.
    pub ipc: Option<String>,
    pub pid: PidNs,
    /// Mount a /proc for the PID namespace (default on when `pid` isn't Keep).
    pub mount_proc: bool,
    pub user: Option<(u32, u32)>,
    /// Supplementary groups (`supplementalGroups`), besides the primary one.
    pub groups: Vec<u32>,
    /// `runAsNonRoot`: refuse to exec as uid 0, with a reason.
    pub non_root: bool,
    /// Stay and wait for the command, exiting with its status: for hooks
    /// (`ExecStartPost=`/`ExecStop=`), which systemd runs as control
    /// processes that must last as long as the hook. Only matters with a
    /// PID namespace; otherwise the joiner execs the command directly.
    pub wait: bool,
    /// Capabilities to keep in the bounding set; `None` keeps all.
    pub caps: Option<Vec<u32>>,
    /// Set up the container's root and pivot into it (`--rootfs DIR` with
    /// `--bind`, `--bind-ro`, `--ro-root`, `--ro-sys`, `--mqueue`), see
    /// [`crate::container_root`]. For the main command and init containers.
    pub root: Option<RootConfig>,
    /// Enter this mount namespace instead (`--mnt /proc/${MAINPID}/ns/mnt`):
    /// exec hooks run in the running container's file system view.
    pub mnt: Option<String>,
    /// The working directory inside the container (`--cwd`).
    pub cwd: Option<String>,
    /// Enter this network namespace (`--net /proc/N/ns/net`, with `--mnt`
    /// of the same N): for `podc exec`, which unlike a hook does not
    /// inherit the unit's `NetworkNamespacePath=`.
    pub net: Option<String>,
    /// Set `PR_SET_NO_NEW_PRIVS` before exec (`--no-new-privs`): `podc
    /// exec` into a unit with `NoNewPrivileges=yes`, which systemd sets for
    /// the unit's own processes only.
    pub no_new_privs: bool,
    /// Read the command's environment from this inherited file descriptor
    /// (`--environ-fd N`, `NAME=VALUE` entries each ended by a NUL) and
    /// exec with exactly that, the command looked up in its `PATH` inside
    /// the container. `podc exec` starts the joiner with an empty
    /// environment and hands it the container's this way: the container's
    /// variables are data for the command, never input to the joiner.
    pub environ_fd: Option<i32>,
    pub argv: Vec<OsString>,
}

/// Capability names in kernel order (`CAP_` prefix omitted), as Kubernetes'
/// `securityContext.capabilities` spells them.
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Number of a capability name (`NET_RAW` or `CAP_NET_RAW`, any case).
pub fn capability(name: &str) -> Option<u32> {
    let n = name.to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n);
    CAPABILITIES.iter().position(|c| *c == n).map(|i| i as u32)
}

/// Wait (bounded) until `pid` is in the stopped state. It is not our child
/// (`CLONE_PARENT`), so `waitpid` cannot see it; `/proc/PID/stat` can.
fn wait_stopped(pid: libc::pid_t) -> std::io::Result<()> {
    let path = format!("/proc/{pid}/stat");
    for _ in 0..10_000 {
        let stat = std::fs::read_to_string(&path)?;
        // "PID (comm) STATE ...": comm may hold spaces and parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        match state {
            Some("T") | Some("t") => return Ok(()),
            Some("Z") | Some("X") => {
                return Err(std::io::Error::other(
                    "the container process died before it started",
                ))
            }
            _ => std::thread::sleep(std::time::Duration::from_micros(500)),
        }
    }
    Err(std::io::Error::other(
        "the container process did not stop within 5 s",
    ))
}

/// Tell systemd (`Type=notify`) that `child` is the unit's main process
/// and that the unit is up, then wait until systemd has processed that:
/// `sd_notify_barrier(3)`'s protocol, a `BARRIER=1` datagram carrying the
/// write end of a pipe, which systemd closes once every earlier message of
/// ours is handled; the read end then sees POLLHUP. Bounded by 10 s.
fn adopt_by_notify(
    s: &std::os::unix::net::UnixDatagram,
    child: libc::pid_t,
) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let send = |msg: &[u8], fds: &[i32]| -> std::io::Result<()> {
        let iov = [std::io::IoSlice::new(msg)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg::<UnixAddr>(s.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
        Ok(())
    };
    send(format!("MAINPID={child}\nREADY=1").as_bytes(), &[])?;
    let mut p = [-1i32; 2];
    // SAFETY: pipe2 fills the array we own; both ends are owned right after.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    send(b"BARRIER=1", &[wr.as_raw_fd()])?;
    drop(wr);
    let mut pfd = libc::pollfd {
        fd: rd.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::other(
                "systemd did not confirm the main PID within 10 s (is the unit Type=notify?)",
            ));
        }
        // SAFETY: poll on one pollfd we own.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(10_000) as i32) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n > 0 && pfd.revents & libc::POLLHUP != 0 {
            return Ok(());
        }
    }
}

/// A datagram socket connected to systemd's notify socket (`@name` is
/// an abstract address).
fn connect_notify(sock: &std::ffi::OsStr) -> std::io::Result<std::os::unix::net::UnixDatagram> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let s = UnixDatagram::unbound()?;
    match sock.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            s.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)?
        }
        None => s.connect(std::path::Path::new(sock))?,
    }
    Ok(s)
}

/// `podc-pause release PID`: continue a container process the joiner left
/// stopped (see [`run`]); the unit's first `ExecStartPost=`, run once
/// systemd knows the process as `$MAINPID`.
pub fn release(args: &[OsString]) -> i32 {
    let pid = match args {
        [p] => p.to_str().and_then(|p| p.parse::<libc::pid_t>().ok()),
        _ => None,
    };
    let Some(pid) = pid.filter(|p| *p > 1) else {
        eprintln!("usage: podc-pause release PID");
        return 2;
    };
    // SAFETY: plain kill(2).
    if unsafe { libc::kill(pid, libc::SIGCONT) } != 0 {
        let e = std::io::Error::last_os_error();
        eprintln!("podc-pause release {pid}: {e}");
        return 1;
    }
    0
}

pub const USAGE: &str =
    "usage: podc-pause join [--rootfs DIR [--bind SRC DST]... [--bind-ro SRC DST]... \
[--ro-root] [--ro-sys] [--mqueue] | --mnt NSFILE] [--cwd DIR] [--uts NSFILE] [--ipc NSFILE] \
[--pid NSFILE | --new-pid] \
[--no-proc] [--wait] [--caps NAME,...] [--user UID[:GID]] [--groups GID,...] [--non-root] \
[--net NSFILE] [--no-new-privs] [--environ-fd N] -- CMD [ARG...]";

impl JoinConfig {
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<JoinConfig, String> {
        let mut cfg = JoinConfig {
            uts: None,
            ipc: None,
            pid: PidNs::Keep,
            mount_proc: true,
            user: None,
            groups: Vec::new(),
            non_root: false,
            wait: false,
            caps: None,
            root: None,
            mnt: None,
            cwd: None,
            net: None,
            no_new_privs: false,
            environ_fd: None,
            argv: Vec::new(),
        };
        let (mut rootfs, mut binds, mut ro_root, mut ro_sys, mut mqueue) =
            (None, Vec::new(), false, false, false);
        let mut layers: Vec<std::path::PathBuf> = Vec::new();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let s = arg.to_str().unwrap_or("");
            let mut value = |name: &str| -> Result<String, String> {
                it.next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match s {
                "--uts" => cfg.uts = Some(value("--uts")?),
                "--ipc" => cfg.ipc = Some(value("--ipc")?),
                "--pid" => cfg.pid = PidNs::Join(value("--pid")?),
                "--new-pid" => cfg.pid = PidNs::New,
                "--no-proc" => cfg.mount_proc = false,
                "--rootfs" => rootfs = Some(value("--rootfs")?),
                "--layer" => {
                    let l = value("--layer")?;
                    if !l.starts_with('/') {
                        return Err(format!("--layer {l:?}: expected an absolute path"));
                    }
                    layers.push(l.into());
                }
                "--bind" | "--bind-ro" => {
                    let src = value(s)?;
                    let dst = value(s)?;
                    if !src.starts_with('/') || !dst.starts_with('/') {
                        return Err(format!("{s} {src:?} {dst:?}: expected absolute paths"));
                    }
                    binds.push(Bind {
                        src,
                        dst,
                        read_only: s == "--bind-ro",
                    });
                }
                "--ro-root" => ro_root = true,
                "--ro-sys" => ro_sys = true,
                "--mqueue" => mqueue = true,
                "--mnt" => cfg.mnt = Some(value("--mnt")?),
                "--cwd" => cfg.cwd = Some(value("--cwd")?),
                "--net" => cfg.net = Some(value("--net")?),
                "--no-new-privs" => cfg.no_new_privs = true,
                "--environ-fd" => {
                    let v = value("--environ-fd")?;
                    let fd = v.parse::<i32>().ok().filter(|fd| *fd > 2);
                    cfg.environ_fd = Some(
                        fd.ok_or_else(|| format!("--environ-fd {v:?}: expected a number > 2"))?,
                    );
                }
                "--wait" => cfg.wait = true,
                "--user" => {
                    let v = value("--user")?;
                    let (u, g) = v.split_once(':').unwrap_or((&v, &v));
                    let parse = |x: &str| {
                        x.parse::<u32>()
                            .map_err(|_| format!("--user {v:?}: expected numeric UID[:GID]"))
                    };
                    cfg.user = Some((parse(u)?, parse(g)?));
                }
                "--groups" => {
                    let v = value("--groups")?;
                    cfg.groups = v
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(|g| {
                            g.parse::<u32>()
                                .map_err(|_| format!("--groups {v:?}: expected numeric GIDs"))
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--non-root" => cfg.non_root = true,
                "--caps" => {
                    let v = value("--caps")?;
                    let caps = v
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(|c| {
                            capability(c).ok_or_else(|| format!("--caps: unknown capability {c:?}"))
                        })
                        .collect::<Result<Vec<u32>, String>>()?;
                    cfg.caps = Some(caps);
                }
                "--" => {
                    cfg.argv.extend(it);
                    break;
                }
                _ if s.starts_with("--") => return Err(format!("unknown argument {s:?}")),
                _ => {
                    cfg.argv.push(arg);
                    cfg.argv.extend(it);
                    break;
                }
            }
        }
        if cfg.argv.is_empty() {
            return Err("no command given".into());
        }
        match rootfs {
            Some(dir) => {
                if cfg.mnt.is_some() {
                    return Err("--rootfs and --mnt exclude each other".into());
                }
                cfg.root = Some(RootConfig {
                    dir: dir.into(),
                    layers,
                    binds,
                    read_only_root: ro_root,
                    confined: ro_sys,
                    mqueue,
                    host_proc: cfg.pid == PidNs::Keep,
                });
            }
            None if !binds.is_empty() || ro_root || ro_sys || mqueue => {
                return Err(
                    "--bind, --bind-ro, --ro-root, --ro-sys and --mqueue need --rootfs".into(),
                )
            }
            None => {}
        }
        if cfg.mnt.is_some() {
            // The container's /proc is there already.
            cfg.mount_proc = false;
        } else if cfg.net.is_some() {
            return Err("--net needs --mnt (a running container's namespaces)".into());
        }
        Ok(cfg)
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> i32 {
    eprintln!("podc-pause join: {what}: {e}");
    // 127 like a shell's "cannot run": the unit fails with a clear status.
    127
}

/// Enter the namespaces and exec; returns only on error (the exit code).
pub fn run(cfg: &JoinConfig) -> i32 {
    // Everything named by a host path is opened before the root changes.
    let uts = match cfg.uts.as_deref().map(std::fs::File::open).transpose() {
        Ok(f) => f,
        Err(e) => return fail("open uts namespace", e),
    };
    // A running container's namespaces (hooks, `podc exec`) are checked
    // and opened together; the pod's own are named by the unit.
    let (mnt, pid, net) = match (&cfg.mnt, &cfg.pid) {
        (Some(m), p) => {
            let p = match p {
                PidNs::Join(p) => Some(p.as_str()),
                _ => None,
            };
            match open_container_ns(m, p, cfg.net.as_deref()) {
                Ok(ns) => (Some(ns.mnt), ns.pid, ns.net),
                Err(e) => return fail("enter the container", e),
            }
        }
        (None, PidNs::Join(p)) => match std::fs::File::open(p) {
            Ok(f) => (None, Some(f), None),
            Err(e) => return fail(&format!("open pid namespace {p}"), e),
        },
        (None, _) => (None, None, None),
    };
    let environ = match cfg.environ_fd.map(read_environ).transpose() {
        Ok(e) => e,
        Err(e) => return fail("--environ-fd", e),
    };
    if let Some(f) = &net {
        if let Err(e) = setns(f.as_fd(), CloneFlags::CLONE_NEWNET) {
            return fail("setns net", e);
        }
    }
    let ipc = match cfg.ipc.as_deref().map(std::fs::File::open).transpose() {
        Ok(f) => f,
        Err(e) => return fail("open ipc namespace", e),
    };
    // IPC first: the root's /dev/mqueue is the IPC namespace's.
    if let Some(f) = &ipc {
        if let Err(e) = setns(f.as_fd(), CloneFlags::CLONE_NEWIPC) {
            return fail("setns ipc", e);
        }
    }
    // Handed to systemd (Type=notify), see the module doc. The socket is
    // connected now: its path is not reachable from the container's root.
    let notify = match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) if !cfg.wait => {
            // Not the container's: it must not talk to systemd about the
            // unit, and Kubernetes containers do not see it.
            std::env::remove_var("NOTIFY_SOCKET");
            match connect_notify(&path) {
                Ok(s) => Some(s),
                Err(e) => return fail("connect to $NOTIFY_SOCKET", e),
            }
        }
        _ => None,
    };
    if cfg.root.is_some() && notify.is_none() && !cfg.wait && cfg.pid != PidNs::Keep {
        // The Type=forking hand-over watches /proc/PID/stat, which the
        // container's root does not have yet at that point.
        return fail(
            "container root",
            "--rootfs with a PID namespace needs a Type=notify unit ($NOTIFY_SOCKET)",
        );
    }
    // Privileged containers keep a writable /proc/sys and nothing masked,
    // as in Kubernetes.
    let ro_proc = cfg.root.as_ref().is_none_or(|r| r.confined);
    if let Some(root) = &cfg.root {
        if let Err(e) = container_root::setup(root) {
            return fail("container root", e);
        }
        if root.host_proc && ro_proc {
            if let Err(e) = container_root::confine_proc() {
                return fail("/proc", e);
            }
        }
    }
    if let Some(f) = &uts {
        if let Err(e) = setns(f.as_fd(), CloneFlags::CLONE_NEWUTS) {
            return fail("setns uts", e);
        }
    }
    match (&cfg.pid, &pid) {
        (PidNs::Join(_), Some(f)) => {
            if let Err(e) = setns(f.as_fd(), CloneFlags::CLONE_NEWPID) {
                return fail("setns pid", e);
            }
        }
        (PidNs::New, _) => {
            if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
                return fail("unshare pid", e);
            }
        }
        _ => {}
    }
    if let Some(f) = &mnt {
        // Root and working directory become the namespace's root: the
        // container's, which its runtime pivoted into.
        if let Err(e) = setns(f.as_fd(), CloneFlags::CLONE_NEWNS) {
            return fail("setns mnt", e);
        }
    }
    if let Some(cwd) = &cfg.cwd {
        if let Err(e) = container_root::enter_working_dir(cwd) {
            return fail("working directory", e);
        }
    }
    drop((uts, pid, mnt, ipc, net));
    if cfg.pid != PidNs::Keep {
        // SAFETY: raw clone without CLONE_VM behaves like fork(); this
        // process is single-threaded, and the child only mounts, changes
        // credentials and execs.
        // With --wait (hooks) the child stays ours and we wait for it;
        // otherwise CLONE_PARENT hands it to systemd (see module doc).
        let flags = if cfg.wait {
            libc::SIGCHLD
        } else {
            libc::CLONE_PARENT | libc::SIGCHLD
        };
        // Handed to systemd, the child must not run before systemd has
        // adopted it as MainPID: a command that exits at once would be gone
        // before systemd looks, and its status lost (systemd 252 then
        // records inactive/success). The child blocks reading `gate` until
        // the joiner closes its write end: after systemd confirmed
        // MAINPID= (Type=notify), or, without a notify socket, once the
        // child is stopped for `podc-pause release` (Type=forking).
        let mut gate = [-1i32; 2];
        // SAFETY: pipe2 fills the array we own.
        if !cfg.wait && unsafe { libc::pipe2(gate.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return fail("pipe", std::io::Error::last_os_error());
        }
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        match r {
            -1 => return fail("clone", std::io::Error::last_os_error()),
            0 if !cfg.wait => {
                // SAFETY: plain fd syscalls on the pipe's ends.
                unsafe {
                    libc::close(gate[1]);
                    let mut b = 0u8;
                    while libc::read(gate[0], (&mut b as *mut u8).cast(), 1) != 0 {
                        if *libc::__errno_location() != libc::EINTR {
                            break;
                        }
                    }
                    libc::close(gate[0]);
                }
            }
            0 => {} // a hook's child goes on to exec
            child if cfg.wait => return wait_exit_code(child as libc::pid_t),
            child => {
                let child = child as libc::pid_t;
                // SAFETY: close our copy of the child's end.
                unsafe { libc::close(gate[0]) };
                let adopted = match &notify {
                    Some(sock) => adopt_by_notify(sock, child),
                    None => {
                        // SAFETY: kill(2) of the child we just made.
                        unsafe { libc::kill(child, libc::SIGSTOP) };
                        wait_stopped(child)
                    }
                };
                // SAFETY: closing our write end lets the child's read end.
                unsafe { libc::close(gate[1]) };
                return match adopted {
                    Ok(()) => 0,
                    Err(e) => {
                        // SAFETY: plain kill(2) of our own child.
                        unsafe { libc::kill(child, libc::SIGKILL) };
                        fail("handing the container process to systemd", e)
                    }
                };
            }
        }
        if cfg.mount_proc {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            if let Err(e) = mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>) {
                return fail("mount /proc", e);
            }
            if ro_proc {
                if let Err(e) = container_root::confine_proc() {
                    return fail("/proc", e);
                }
            }
        }
    }
    if let Some(keep) = &cfg.caps {
        if let Err(e) = limit_bounding_set(keep) {
            return fail("capability bounding set", e);
        }
    }
    if cfg.non_root && cfg.user.is_none_or(|(uid, _)| uid == 0) {
        eprintln!(
            "podc-pause join: container has runAsNonRoot and would run as root (uid 0); set runAsUser to a non-zero uid"
        );
        return 126;
    }
    if let Some((uid, gid)) = cfg.user {
        let mut all = vec![Gid::from_raw(gid)];
        all.extend(cfg.groups.iter().map(|g| Gid::from_raw(*g)));
        let gid = Gid::from_raw(gid);
        if let Err(e) = setgroups(&all) {
            return fail("setgroups", e);
        }
        if let Err(e) = setgid(gid) {
            return fail("setgid", e);
        }
        if let Err(e) = setuid(Uid::from_raw(uid)) {
            return fail("setuid", e);
        }
    }
    let argv: Result<Vec<CString>, _> = cfg
        .argv
        .iter()
        .map(|a| CString::new(a.clone().into_vec()))
        .collect();
    let argv = match argv {
        Ok(a) => a,
        Err(e) => return fail("argument", e),
    };
    if cfg.no_new_privs {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return fail("no_new_privs", std::io::Error::last_os_error());
        }
    }
    // In the host PID namespace this process is the main process and
    // execs the command itself (`Type=notify`): tell systemd the container
    // is set up, so a failed setup fails the start instead of following it.
    if let (Some(sock), PidNs::Keep) = (&notify, &cfg.pid) {
        if let Err(e) = sock.send(b"READY=1") {
            return fail("notify systemd", e);
        }
    }
    if argv.is_empty() {
        return fail("argument", "no command given");
    }
    let e = match &environ {
        Some(env) => exec_with_environ(&argv, env),
        None => execvp(&argv[0], &argv).unwrap_err(),
    };
    fail(&format!("exec {:?}", argv[0]), e)
}

/// `N` of `/proc/N/ns/NAME`, in its plain decimal spelling.
fn proc_ns_pid(path: &str, name: &str) -> Option<libc::pid_t> {
    let (n, tail) = path.strip_prefix("/proc/")?.split_once('/')?;
    let pid = n.parse::<libc::pid_t>().ok().filter(|p| *p > 0)?;
    (tail.strip_prefix("ns/") == Some(name) && pid.to_string() == n).then_some(pid)
}

/// Open the mount (and PID) namespace of the running container process N
/// for an exec hook or `podc exec` (`--mnt /proc/N/ns/mnt`, `--pid
/// /proc/N/ns/pid`, N being systemd's `$MAINPID`), only when N is in this
/// process's own cgroup: hooks run in the container unit's cgroup, and
/// `podc exec` attaches itself to it first. So a forged `$MAINPID` (or any
/// other path) can never make the joiner enter the host's PID 1 or another
/// unit's process and run a command there as root. The files are opened
/// through one `/proc/N` directory, so they and the cgroup checked are of
/// the same process even if N is reused meanwhile.
fn open_container_ns(
    mnt: &str,
    pid: Option<&str>,
    net: Option<&str>,
) -> Result<ContainerNs, String> {
    let n = proc_ns_pid(mnt, "mnt")
        .ok_or_else(|| format!("--mnt {mnt:?}: expected /proc/PID/ns/mnt"))?;
    for (opt, path, ns) in [("--pid", pid, "pid"), ("--net", net, "net")] {
        if let Some(p) = path.filter(|p| proc_ns_pid(p, ns) != Some(n)) {
            return Err(format!("{opt} {p:?}: expected /proc/{n}/ns/{ns}, as --mnt"));
        }
    }
    let dir = std::fs::File::open(format!("/proc/{n}")).map_err(|e| format!("/proc/{n}: {e}"))?;
    let at = |rel: &str| -> Result<std::fs::File, String> {
        let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
        nix::fcntl::openat(&dir, rel, flags, nix::sys::stat::Mode::empty())
            .map(std::fs::File::from)
            .map_err(|e| format!("/proc/{n}/{rel}: {e}"))
    };
    let mut theirs = String::new();
    std::io::Read::read_to_string(&mut at("cgroup")?, &mut theirs)
        .map_err(|e| format!("/proc/{n}/cgroup: {e}"))?;
    let ours = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let (theirs, ours) = (unit_cgroup(&theirs), unit_cgroup(&ours));
    if theirs.is_empty() || theirs != ours {
        return Err(format!(
            "process {n} is not in this unit's cgroup: refusing to enter its namespaces"
        ));
    }
    Ok(ContainerNs {
        pid: pid.map(|_| at("ns/pid")).transpose()?,
        net: net.map(|_| at("ns/net")).transpose()?,
        mnt: at("ns/mnt")?,
    })
}

/// The namespaces [`open_container_ns`] opened.
#[derive(Debug)]
struct ContainerNs {
    mnt: std::fs::File,
    pid: Option<std::fs::File>,
    net: Option<std::fs::File>,
}

/// The lines of a `/proc/PID/cgroup` that name the systemd unit: the
/// unified hierarchy's (`0::PATH`) and, on cgroup v1, systemd's own
/// (`N:name=systemd:PATH`). v1 controller lines are left out: systemd
/// places a process in a controller's hierarchy only where the unit
/// realized it, so they can differ between two processes of one unit.
fn unit_cgroup(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let mut f = l.splitn(3, ':');
            let (id, ctl) = (f.next(), f.next());
            id == Some("0") || ctl == Some("name=systemd")
        })
        .collect()
}

/// Most the environment given with `--environ-fd` may hold: more than the
/// kernel takes for one execve.
const MAX_ENVIRON: u64 = 4 << 20;

/// The `NAME=VALUE` entries (each ended by a NUL) read from `fd`.
fn read_environ(fd: i32) -> std::io::Result<Vec<CString>> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    // SAFETY: the fd was handed to us for this (--environ-fd); we own it now.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut buf = Vec::new();
    f.take(MAX_ENVIRON + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_ENVIRON {
        return Err(std::io::Error::other("environment too large"));
    }
    Ok(buf
        .split(|b| *b == 0)
        .filter(|kv| kv.contains(&b'='))
        .filter_map(|kv| CString::new(kv).ok())
        .collect())
}

/// `execve` `argv` with exactly `env`, looking a bare command name up in
/// that environment's `PATH` (the container runtimes' default without
/// one), as `execvp` would in the container; returns only on error.
fn exec_with_environ(argv: &[CString], env: &[CString]) -> nix::Error {
    use std::os::unix::ffi::OsStrExt;
    let name = argv[0].as_bytes();
    if name.contains(&b'/') {
        return nix::unistd::execve(&argv[0], argv, env).unwrap_err();
    }
    let path = env
        .iter()
        .find_map(|kv| kv.as_bytes().strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut err = nix::Error::ENOENT;
    for dir in path.split(|b| *b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let full = std::path::Path::new(std::ffi::OsStr::from_bytes(dir))
            .join(std::ffi::OsStr::from_bytes(name));
        let Ok(full) = CString::new(full.into_os_string().into_vec()) else {
            continue;
        };
        match nix::unistd::execve(&full, argv, env).unwrap_err() {
            nix::Error::ENOENT | nix::Error::ENOTDIR => {}
            nix::Error::EACCES => err = nix::Error::EACCES,
            e => return e,
        }
    }
    err
}

/// Wait for `child` and turn its end into an exit code, shell style
/// (128 + signal number when killed).
fn wait_exit_code(child: libc::pid_t) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(child), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return fail("wait", e),
        }
    }
}

/// Drop every capability not in `keep` from the bounding set. The current
/// process keeps its effective set (it still needs CAP_SETUID to drop to
/// the user); the exec'd command cannot gain the dropped ones.
fn limit_bounding_set(keep: &[u32]) -> std::io::Result<()> {
    // The kernel's last capability, asked of the kernel: never of a file,
    // since /proc here is the container's view (an image or a container
    // could put its own cap_last_cap there, and a 0 would keep them all).
    // PR_CAPBSET_READ fails with EINVAL past the last one.
    let mut last = 0u32;
    // SAFETY: prctl with integer arguments only.
    while last < 63
        && unsafe { libc::prctl(libc::PR_CAPBSET_READ, (last + 1) as libc::c_ulong, 0, 0, 0) } >= 0
    {
        last += 1;
    }
    for cap in 0..=last {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    clear_inherited_caps()
}

/// Empty the inheritable and ambient capability sets, which the bounding
/// set does not limit: a caller's (`podc exec` run from a shell that has
/// them) would otherwise pass capabilities outside the container's set to
/// the command (ambient ones directly, inheritable ones with a file's
/// inheritable capabilities). systemd starts units with both empty.
fn clear_inherited_caps() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and the two data words v3 uses.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        d[0].inheritable = 0;
        d[1].inheritable = 0;
        if libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names() {
        assert_eq!(capability("CHOWN"), Some(0));
        assert_eq!(capability("cap_sys_admin"), Some(21));
        assert_eq!(capability("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability("NOPE"), None);
        let c = parse(&["--caps", "NET_RAW,KILL", "true"]).unwrap();
        assert_eq!(c.caps, Some(vec![13, 5]));
        assert!(parse(&["--caps", "FLY", "true"]).is_err());
    }

    fn parse(a: &[&str]) -> Result<JoinConfig, String> {
        JoinConfig::from_args(a.iter().map(OsString::from))
    }

    #[test]
    fn only_proc_pid_ns_paths_name_a_container_process() {
        assert_eq!(proc_ns_pid("/proc/42/ns/mnt", "mnt"), Some(42));
        assert_eq!(proc_ns_pid("/proc/42/ns/pid", "pid"), Some(42));
        for bad in [
            "/proc//ns/mnt",
            "/proc/0/ns/mnt",
            "/proc/042/ns/mnt",
            "/proc/+4/ns/mnt",
            "/proc/self/ns/mnt",
            "/proc/4/ns/pid",
            "/proc/4/ns/mnt/..",
            "/proc/4/../1/ns/mnt",
            "/run/x/ns/mnt",
        ] {
            assert_eq!(proc_ns_pid(bad, "mnt"), None, "{bad}");
        }
    }

    #[test]
    fn the_pid_namespace_entered_is_the_same_process_s() {
        // (The cgroup refusal is shown on a real systemd: tests/hostile_exec.rs.)
        let me = std::process::id();
        let mine = format!("/proc/{me}/ns/mnt");
        let net = format!("/proc/{me}/ns/net");
        let ns = open_container_ns(&mine, None, Some(&net)).unwrap();
        assert!(ns.pid.is_none() && ns.net.is_some());
        let e = open_container_ns(&mine, Some("/proc/1/ns/pid"), None).unwrap_err();
        assert!(e.contains("expected /proc/"), "{e}");
        let e = open_container_ns(&mine, None, Some("/proc/1/ns/net")).unwrap_err();
        assert!(e.contains("expected /proc/"), "{e}");
        assert!(parse(&["--net", "/proc/1/ns/net", "--", "true"]).is_err());
        let c = parse(&[
            "--mnt",
            &mine,
            "--net",
            &net,
            "--no-new-privs",
            "--environ-fd",
            "5",
            "--",
            "true",
        ])
        .unwrap();
        assert!(c.no_new_privs && c.environ_fd == Some(5) && c.net == Some(net));
        assert!(parse(&["--environ-fd", "1", "--", "true"]).is_err());
    }

    #[test]
    fn parses_join_arguments() {
        let c = parse(&[
            "--uts",
            "/run/podc/pods/p/ns/uts",
            "--pid",
            "/x",
            "--user",
            "1000:100",
            "--",
            "sh",
            "-c",
            "--uts",
        ])
        .unwrap();
        assert_eq!(c.uts.as_deref(), Some("/run/podc/pods/p/ns/uts"));
        assert_eq!(c.pid, PidNs::Join("/x".into()));
        assert_eq!(c.user, Some((1000, 100)));
        assert_eq!(c.argv, vec!["sh", "-c", "--uts"]);
        let c = parse(&["--new-pid", "--user", "7", "true"]).unwrap();
        assert_eq!((c.pid, c.user, c.argv.len()), (PidNs::New, Some((7, 7)), 1));
    }

    #[test]
    fn rejects_bad_join_arguments() {
        assert!(parse(&["--uts", "/x"]).is_err());
        assert!(parse(&["--user", "bob", "--", "true"]).is_err());
        assert!(parse(&["--what", "--", "true"]).is_err());
        // root options need a root; a root and an entered namespace exclude each other
        assert!(parse(&["--ro-root", "--", "true"]).is_err());
        assert!(parse(&["--bind", "/a", "/b", "--", "true"]).is_err());
        assert!(parse(&["--rootfs", "/c", "--mnt", "/m", "--", "true"]).is_err());
        assert!(parse(&["--rootfs", "/c", "--bind", "a", "/b", "--", "true"]).is_err());
        assert!(parse(&["--rootfs", "/c", "--bind", "/a", "--", "true"]).is_err());
    }

    #[test]
    fn parses_root_arguments() {
        let c = parse(&[
            "--rootfs",
            "/s/c",
            "--bind-ro",
            "/run/p/hosts",
            "/etc/hosts",
            "--bind",
            "/v",
            "/data",
            "--ro-root",
            "--ro-sys",
            "--mqueue",
            "--cwd",
            "/w",
            "--new-pid",
            "--",
            "sleep",
            "1",
        ])
        .unwrap();
        let r = c.root.unwrap();
        assert_eq!(r.dir, std::path::Path::new("/s/c"));
        assert_eq!(
            r.binds,
            vec![
                Bind {
                    src: "/run/p/hosts".into(),
                    dst: "/etc/hosts".into(),
                    read_only: true
                },
                Bind {
                    src: "/v".into(),
                    dst: "/data".into(),
                    read_only: false
                },
            ]
        );
        assert!(r.read_only_root && r.confined && r.mqueue && !r.host_proc);
        assert_eq!(c.cwd.as_deref(), Some("/w"));
        // the host PID namespace: the root gets the host's /proc now
        let c = parse(&["--rootfs", "/s/c", "--", "true"]).unwrap();
        assert!(c.root.unwrap().host_proc);
        // a hook enters the container's mount namespace and keeps its /proc
        let c = parse(&[
            "--mnt",
            "/proc/7/ns/mnt",
            "--pid",
            "/proc/7/ns/pid",
            "--wait",
            "--",
            "true",
        ])
        .unwrap();
        assert!(c.root.is_none() && !c.mount_proc);
        assert_eq!(c.mnt.as_deref(), Some("/proc/7/ns/mnt"));
    }
}
