//! The pod infra ("pause") process, run by the pod's `Type=notify` infra unit.
//!
//! Why a process at all: a namespace lives as long as something holds it.
//! systemd has no directive that *creates* a shared network/IPC/UTS
//! namespace for several units, but it can *join* one by path
//! (`NetworkNamespacePath=`, `IPCNamespacePath=`). So one small process per
//! pod creates the namespaces, pins them as files under
//! `/run/podc/pods/<pod-id>/ns/` (bind mounts of `/proc/self/ns/*`, exactly
//! what `ip netns add` does), and the container units join those files.
//! Pinning by bind mount also keeps the namespaces alive independent of the
//! process, which is why cleanup must unmount them: otherwise the namespace
//! (and every socket in it) would outlive the pod.
//!
//! The infra unit must not use mount-namespacing directives (`PrivateTmp=`,
//! `ProtectSystem=`, `BindPaths=`...): the bind mounts have to land in the
//! host's mount namespace where systemd and the container units see them.
//!
//! PID namespace (`shareProcessNamespace`): `unshare(CLONE_NEWPID)` only
//! affects children, so the pause forks once; the child is PID 1 of the new
//! namespace (it reaps zombies reparented to it and holds the namespace),
//! while the parent stays the unit's main process. That keeps systemd's view
//! simple: `MainPID` is a host-visible PID that sent `READY=1` itself, so the
//! default `NotifyAccess=main` suffices, and stopping the unit (SIGTERM to
//! the main process) reaches the code that cleans up. When the pod's PID 1
//! dies the kernel kills everything left in that namespace, which is the
//! Kubernetes semantics of the pause container going away.
//!
//! Memory: this runs once per pod, so it avoids anything that grows the
//! resident set (no threads, no allocator-heavy work after startup). A
//! static Rust binary has ~1.1-1.4 MB of text, and the kernel's fault-around
//! maps most of it on first use, so `VmRSS` would read ~1.4 MB although
//! those are page-cache pages shared by every pause on the host (`RssAnon`
//! is ~90 kB). Once set up, the pause therefore drops its read-only file
//! mappings from its page tables ([`release_file_pages`]); they fault back
//! in on the rare wakeup. Measured `VmRSS` then stays well under 1 MB.

use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::libc;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, sethostname, ForkResult, Pid};

/// Default directory under which each pod gets `<pod-id>/`.
pub const DEFAULT_RUN_ROOT: &str = "/run/podc/pods";

/// One `spec.hostAliases[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

/// What the infra process needs to know about its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Names the directory under the run root; a single safe path component.
    pub pod_id: String,
    pub hostname: String,
    /// `spec.subdomain` + cluster domain, if any: the pod IP line then reads
    /// `IP\tHOST.DOMAIN\tHOST` as kubelet writes it.
    pub domain: Option<String>,
    pub pod_ips: Vec<String>,
    pub host_aliases: Vec<HostAlias>,
    /// Also create a PID namespace (`shareProcessNamespace: true`).
    pub pid_ns: bool,
    /// `hostNetwork: true`: stay in the host's network (and, as Kubernetes
    /// does, UTS) namespace; no `ns/net` or `ns/uts` is pinned.
    pub host_network: bool,
    /// `hostIPC: true`: stay in the host's IPC namespace.
    pub host_ipc: bool,
    /// Pod `sysctls` (`name`, `value`), set inside the pod's namespaces.
    pub sysctls: Vec<(String, String)>,
    /// resolv.conf to copy into the pod (the host's by default).
    pub resolv_conf: PathBuf,
    pub run_root: PathBuf,
}

/// Usage text for `podc-pause infra`.
pub const USAGE: &str =
    "usage: podc-pause [infra] --pod-id ID [--hostname NAME] [--domain DOMAIN] \
[--pod-ip IP]... [--host-alias IP=NAME[,NAME...]]... [--pid] [--host-network] [--host-ipc] \
[--sysctl NAME=VALUE]... [--resolv-conf PATH] [--run-root DIR]";

impl Config {
    /// Parse `podc-pause infra` arguments (without the program name).
    /// Hand-written rather than clap: this binary must stay tiny (see module doc).
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Config, String> {
        let mut pod_id = None;
        let mut cfg = Config {
            pod_id: String::new(),
            hostname: String::new(),
            domain: None,
            pod_ips: Vec::new(),
            host_aliases: Vec::new(),
            pid_ns: false,
            host_network: false,
            host_ipc: false,
            sysctls: Vec::new(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            run_root: PathBuf::from(DEFAULT_RUN_ROOT),
        };
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let arg = arg.into_string().map_err(|a| format!("not UTF-8: {a:?}"))?;
            let mut value = |name: &str| -> Result<String, String> {
                it.next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--pod-id" => pod_id = Some(value("--pod-id")?),
                "--hostname" => cfg.hostname = value("--hostname")?,
                "--domain" => cfg.domain = Some(value("--domain")?),
                "--pod-ip" => cfg.pod_ips.push(value("--pod-ip")?),
                "--host-alias" => {
                    let v = value("--host-alias")?;
                    let (ip, names) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--host-alias {v:?}: expected IP=NAME[,NAME...]"))?;
                    let hostnames: Vec<String> = names
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(String::from)
                        .collect();
                    if ip.is_empty() || hostnames.is_empty() {
                        return Err(format!("--host-alias {v:?}: expected IP=NAME[,NAME...]"));
                    }
                    cfg.host_aliases.push(HostAlias {
                        ip: ip.to_string(),
                        hostnames,
                    });
                }
                "--pid" => cfg.pid_ns = true,
                "--host-network" => cfg.host_network = true,
                "--host-ipc" => cfg.host_ipc = true,
                "--sysctl" => {
                    let v = value("--sysctl")?;
                    let (name, val) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--sysctl {v:?}: expected NAME=VALUE"))?;
                    check_sysctl_name(name)?;
                    cfg.sysctls.push((name.to_string(), val.to_string()));
                }
                "--resolv-conf" => cfg.resolv_conf = value("--resolv-conf")?.into(),
                "--run-root" => cfg.run_root = value("--run-root")?.into(),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        cfg.pod_id = pod_id.ok_or("--pod-id is required")?;
        check_pod_id(&cfg.pod_id)?;
        if cfg.hostname.is_empty() {
            cfg.hostname = cfg.pod_id.clone();
        }
        if cfg.hostname.len() > 64 {
            return Err(format!(
                "hostname {:?} is longer than 64 bytes",
                cfg.hostname
            ));
        }
        Ok(cfg)
    }

    /// `<run_root>/<pod_id>`.
    pub fn pod_dir(&self) -> PathBuf {
        self.run_root.join(&self.pod_id)
    }
}

/// A sysctl name becomes a path under `/proc/sys`: only the namespaced
/// families Kubernetes allows, and nothing that could walk out of them.
pub fn check_sysctl_name(name: &str) -> Result<(), String> {
    let n = name.replace('/', ".");
    let namespaced = n.starts_with("net.")
        || n.starts_with("fs.mqueue.")
        || n.starts_with("kernel.shm")
        || n.starts_with("kernel.msg")
        || n == "kernel.sem";
    let clean = n.split('.').all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if namespaced && clean {
        Ok(())
    } else {
        Err(format!("sysctl {name:?} is not a namespaced sysctl"))
    }
}

/// Write the pod's sysctls. Called after `unshare`, so `/proc/sys/net` and
/// the IPC sysctls are the pod's own namespaces'.
fn apply_sysctls(sysctls: &[(String, String)]) -> io::Result<()> {
    for (name, value) in sysctls {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        fs::write(&path, value)
            .map_err(|e| io::Error::other(format!("sysctl {name}={value}: {e}")))?;
    }
    Ok(())
}

/// A pod id becomes one path component under the run root: refuse anything
/// that could escape it or collide with our own files.
pub fn check_pod_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "pod id {id:?}: use letters, digits, '-', '_', '.', not starting with '.'"
        ))
    }
}

/// The pod's `/etc/hosts`, byte for byte as kubelet writes it
/// (`managedHostsFileContent` + `hostsEntriesFromHostAliases`), so tools
/// that parse Kubernetes hosts files keep working.
pub fn hosts_file(
    hostname: &str,
    domain: Option<&str>,
    pod_ips: &[String],
    aliases: &[HostAlias],
) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        match domain.filter(|d| !d.is_empty()) {
            Some(d) => s.push_str(&format!("{ip}\t{hostname}.{d}\t{hostname}\n")),
            None => s.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.join("\t")));
        }
    }
    s
}

/// Send a datagram to systemd's `$NOTIFY_SOCKET` (what `sd_notify(3)` does,
/// without linking libsystemd). No socket set: not under systemd, do nothing.
pub fn sd_notify(state: &str) -> io::Result<()> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    let addr = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name)?
    } else {
        SocketAddr::from_pathname(&path)?
    };
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// `ip link set lo up` without the `ip` binary: SIOCGIFFLAGS/SIOCSIFFLAGS on
/// any socket of the (new) network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain syscalls on a zeroed, NUL-terminated ifreq we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr);
        }
        let err = io::Error::last_os_error();
        libc::close(fd);
        if r == 0 {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// Everything the pause created on the host, so it can be undone exactly.
struct PodDir {
    dir: PathBuf,
    mounts: Vec<PathBuf>,
}

impl PodDir {
    /// Create `<run_root>/<pod-id>/ns`. A directory left by a pause that was
    /// `kill -9`ed is removed first (its ns mounts detached), so a restart of
    /// the infra unit converges instead of failing.
    ///
    /// The run root and the pod's directory are root-only
    /// ([`crate::perms`]): the pod's `/dev/shm` is a 1777 tmpfs that only
    /// the pod's containers may reach (they get it bound in), and the
    /// namespace pins and the files bound into containers are nobody
    /// else's business either.
    fn create(dir: PathBuf) -> io::Result<PodDir> {
        if let Some(run_root) = dir.parent() {
            crate::perms::private_dir(run_root)?;
        }
        if dir.exists() {
            remove_pod_dir(&dir)?;
        }
        crate::perms::private_dir(&dir)?;
        fs::create_dir(dir.join("ns"))?;
        Ok(PodDir {
            dir,
            mounts: Vec::new(),
        })
    }

    /// Pin namespace file `src` (e.g. `/proc/self/ns/net`) at `ns/<name>`.
    fn pin(&mut self, name: &str, src: &Path) -> io::Result<()> {
        let target = self.dir.join("ns").join(name);
        fs::File::create(&target)?;
        mount(
            Some(src),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            io::Error::other(format!(
                "bind {} on {}: {e}",
                src.display(),
                target.display()
            ))
        })?;
        self.mounts.push(target);
        Ok(())
    }

    /// Mount the pod's `/dev/shm` at `shm`: a tmpfs of [`SHM_SIZE`] that
    /// every container binds, so POSIX shared memory is shared inside the
    /// pod and with nobody else (the IPC namespace does not cover it).
    fn shm(&mut self) -> io::Result<()> {
        let target = self.dir.join("shm");
        fs::create_dir(&target)?;
        mount(
            Some("shm"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,size={SHM_SIZE}").as_str()),
        )
        .map_err(|e| io::Error::other(format!("mount tmpfs on {}: {e}", target.display())))?;
        self.mounts.push(target);
        Ok(())
    }

    /// Write a file atomically (temp + rename): a container that binds it
    /// never sees it half-written.
    fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, data)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
        fs::rename(&tmp, self.dir.join(name))
    }

    fn remove(&mut self) -> io::Result<()> {
        for m in self.mounts.drain(..).rev() {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
        remove_pod_dir(&self.dir)
    }
}

/// The size of a pod's `/dev/shm`: containerd's and CRI-O's default, 64 MiB.
pub const SHM_SIZE: u64 = 64 << 20;

/// Detach any ns mounts under `dir/ns` and the `shm` tmpfs, and remove the
/// directory tree.
fn remove_pod_dir(dir: &Path) -> io::Result<()> {
    let _ = umount2(&dir.join("shm"), MntFlags::MNT_DETACH);
    if let Ok(entries) = fs::read_dir(dir.join("ns")) {
        for e in entries.flatten() {
            // EINVAL = not a mount point: fine, it is just a file then.
            let _ = umount2(&e.path(), MntFlags::MNT_DETACH);
        }
    }
    match crate::perms::remove_tree(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn os(e: nix::Error, what: &str) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// The signals the pause handles synchronously with `sigwait`. Blocked from
/// the very start so a stop request can never kill it before cleanup.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Run the infra process until SIGTERM; returns the exit code for `main`.
pub fn run(cfg: &Config) -> i32 {
    let signals = handled_signals();
    if let Err(e) = signals.thread_block() {
        eprintln!("podc-pause: block signals: {e}");
        return 1;
    }
    let mut pod = match PodDir::create(cfg.pod_dir()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("podc-pause: create {}: {e}", cfg.pod_dir().display());
            return 1;
        }
    };
    let mut pid1 = None;
    let result = setup(cfg, &mut pod, &mut pid1, &signals);
    let code = match result {
        Ok(()) => wait_for_stop(&signals, pid1),
        Err(e) => {
            eprintln!("podc-pause: {e}");
            1
        }
    };
    let _ = sd_notify("STOPPING=1");
    if let Some(child) = pid1 {
        // Killing the pod's PID 1 makes the kernel kill whatever still
        // runs in the pod's PID namespace.
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
    }
    if let Err(e) = pod.remove() {
        eprintln!("podc-pause: cleanup {}: {e}", cfg.pod_dir().display());
        return 1;
    }
    code
}

fn setup(
    cfg: &Config,
    pod: &mut PodDir,
    pid1: &mut Option<Pid>,
    signals: &SigSet,
) -> io::Result<()> {
    let mut flags = CloneFlags::empty();
    if !cfg.host_network {
        flags |= CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS;
    }
    if !cfg.host_ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if cfg.pid_ns {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    unshare(flags).map_err(|e| os(e, "unshare"))?;
    if !cfg.host_network {
        sethostname(&cfg.hostname).map_err(|e| os(e, "sethostname"))?;
        loopback_up().map_err(|e| io::Error::other(format!("bring up lo: {e}")))?;
    }
    apply_sysctls(&cfg.sysctls)?;
    if cfg.pid_ns {
        // SAFETY: single-threaded here; the child only calls
        // async-signal-safe functions (sigwait, waitpid, _exit).
        match unsafe { fork() }.map_err(|e| os(e, "fork"))? {
            ForkResult::Child => pod_init(signals),
            ForkResult::Parent { child } => *pid1 = Some(child),
        }
    }
    let hosts = hosts_file(
        &cfg.hostname,
        cfg.domain.as_deref(),
        &cfg.pod_ips,
        &cfg.host_aliases,
    );
    pod.write("hosts", hosts.as_bytes())?;
    pod.write("hostname", format!("{}\n", cfg.hostname).as_bytes())?;
    let resolv = match fs::read(&cfg.resolv_conf) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(io::Error::other(format!(
                "read {}: {e}",
                cfg.resolv_conf.display()
            )))
        }
    };
    pod.write("resolv.conf", &resolv)?;
    if !cfg.host_network {
        pod.pin("net", Path::new("/proc/self/ns/net"))?;
        pod.pin("uts", Path::new("/proc/self/ns/uts"))?;
    }
    if !cfg.host_ipc {
        pod.pin("ipc", Path::new("/proc/self/ns/ipc"))?;
        pod.shm()?;
    }
    if let Some(child) = pid1 {
        pod.pin("pid", Path::new(&format!("/proc/{child}/ns/pid")))?;
    }
    sd_notify(&format!(
        "READY=1\nSTATUS=pod {} namespaces ready",
        cfg.pod_id
    ))
    .map_err(|e| io::Error::other(format!("notify systemd: {e}")))?;
    Ok(())
}

/// Unmap (`MADV_DONTNEED`) the resident pages of this process's read-only,
/// file-backed mappings (its own text and rodata; the binary is static).
/// Nothing is lost: the pages stay in the page cache and fault back in when
/// touched. Writable mappings are left alone, since dropping them would
/// discard data.
pub fn release_file_pages() {
    // smaps, not maps: RELRO pages (GOT, .data.rel.ro) are read-only now
    // but were written by relocation processing, so they are private
    // anonymous copies; dropping those would bring back unrelocated bytes.
    // Only mappings with no anonymous pages are released.
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
    let mut ranges = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            // A mapping header: "start-end perms offset dev inode path".
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            candidate = match (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                (Ok(a), Ok(b)) if path.starts_with('/') && !perms.contains('w') => Some((a, b)),
                _ => None,
            };
        } else if first == "Anonymous:" {
            if let (Some(r), Some("0")) = (candidate.take(), f.next()) {
                ranges.push(r);
            }
        }
    }
    drop(smaps);
    // All parsing is done before the first madvise, so the code that runs
    // afterwards (this loop, then sigwait) is all that faults back in.
    for (a, b) in ranges {
        // SAFETY: DONTNEED on a private read-only file mapping without
        // anonymous pages only drops PTEs; the next access refaults the
        // identical page-cache page.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
        }
    }
}

/// Main loop of the unit's main process: reap, and return on SIGTERM/SIGINT
/// (exit 0, a clean stop) or when the pod's PID 1 died (exit 1: the PID
/// namespace is gone, the pod cannot go on).
fn wait_for_stop(signals: &SigSet, pid1: Option<Pid>) -> i32 {
    release_file_pages();
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) if reap(pid1) => {
                eprintln!("podc-pause: the pod's PID 1 exited");
                return 1;
            }
            Ok(Signal::SIGTERM | Signal::SIGINT) => return 0,
            _ => {}
        }
    }
}

/// Reap every exited child; true if `watched` was among them.
fn reap(watched: Option<Pid>) -> bool {
    let mut hit = false;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return hit,
            Ok(status) => hit |= status.pid() == watched && watched.is_some(),
        }
    }
}

/// PID 1 of the pod's PID namespace: reap orphans, exit on SIGTERM/SIGINT.
/// (PID 1 ignores signals it has no handler for; ours are blocked and taken
/// with sigwait, which the kernel does deliver.)
fn pod_init(signals: &SigSet) -> ! {
    if let Ok(name) = CString::new("podc-pod-init") {
        let _ = nix::sys::prctl::set_name(&name);
    }
    release_file_pages();
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {
                reap(None);
            }
            Ok(Signal::SIGTERM | Signal::SIGINT) => unsafe { libc::_exit(0) },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn hosts_file_matches_kubelet_format() {
        let aliases = vec![
            HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: vec!["foo.local".into(), "bar.local".into()],
            },
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: vec!["foo.remote".into(), "bar.remote".into()],
            },
        ];
        // The example in the Kubernetes documentation (hostAliases task).
        let want = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
            ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
            fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
            10.200.0.5\thostaliases-pod\n\n# Entries added by HostAliases.\n\
            127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n";
        assert_eq!(
            hosts_file("hostaliases-pod", None, &["10.200.0.5".into()], &aliases),
            want
        );
    }

    #[test]
    fn hosts_file_without_ip_or_aliases_has_only_the_fixed_lines() {
        let s = hosts_file("web", None, &[], &[]);
        assert!(s.starts_with("# Kubernetes-managed hosts file.\n"));
        assert!(s.ends_with("fe00::2\tip6-allrouters\n"));
        assert!(!s.contains("HostAliases"));
    }

    #[test]
    fn hosts_file_with_domain_lists_fqdn_first() {
        let s = hosts_file(
            "web",
            Some("sub.ns.svc.cluster.local"),
            &["10.0.0.7".into()],
            &[],
        );
        assert!(
            s.ends_with("10.0.0.7\tweb.sub.ns.svc.cluster.local\tweb\n"),
            "{s}"
        );
    }

    #[test]
    fn parses_arguments() {
        let c = Config::from_args(args(&[
            "--pod-id",
            "default.web",
            "--hostname",
            "web",
            "--pid",
            "--pod-ip",
            "10.0.0.7",
            "--host-alias",
            "10.1.2.3=foo.remote,bar.remote",
        ]))
        .unwrap();
        assert_eq!(c.pod_id, "default.web");
        assert_eq!(c.hostname, "web");
        assert!(c.pid_ns);
        assert_eq!(c.pod_ips, vec!["10.0.0.7"]);
        assert_eq!(
            c.host_aliases[0].hostnames,
            vec!["foo.remote", "bar.remote"]
        );
        assert_eq!(c.pod_dir(), Path::new("/run/podc/pods/default.web"));
        // Hostname defaults to the pod id.
        let c = Config::from_args(args(&["--pod-id", "p"])).unwrap();
        assert_eq!(c.hostname, "p");
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            &["--hostname", "x"][..],
            &["--pod-id", "../etc"],
            &["--pod-id", ".hidden"],
            &["--pod-id", "a/b"],
            &["--pod-id", "p", "--host-alias", "1.2.3.4"],
            &["--pod-id", "p", "--bogus"],
            &["--pod-id"],
        ] {
            assert!(Config::from_args(args(bad)).is_err(), "{bad:?}");
        }
    }
}
