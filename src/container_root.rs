//! The container's root file system, set up by the joiner
//! (`podc-pause join --rootfs DIR ...`) in a mount namespace of its own,
//! the way an OCI runtime does it, instead of by systemd's `RootDirectory=`,
//! `MountAPIVFS=` and `Bind*Paths=`.
//!
//! Why not systemd's directives: for every unit it starts with a mount
//! namespace, systemd 252 rereads the whole `/proc/self/mountinfo` some
//! twenty to thirty times (once per read-only bind, twice per recursive
//! remount, ...), and that table grows with every pod on the host (its
//! root file systems, namespace pins and `/dev/shm`). With 50 pods running,
//! generating and parsing that text was most of the CPU time of starting a
//! container (`perf` in docs/bench-apply.md). Here the joiner makes a
//! handful of mount calls and never reads the table, and the container's
//! overlay is mounted inside its private namespace only, so the host's
//! table does not grow with containers at all.
//!
//! `DIR` is the container's directory `<state>/pods/<id>/containers/<c>`.
//! With `--layer` (the image's layer directories in the store, top first,
//! known at build time) the joiner lays it out itself at every start: a
//! fresh, empty `upper/` and `work/` (a restarted container starts from the
//! image, as in Kubernetes) and links `l/0`, `l/1`, ... to the layers.
//! Without, the infra unit did that (`podc rootfs prepare`, for an image
//! that was not in the store at build time). The overlay is mounted on
//! `rootfs/` with these short relative names, which keeps any number of
//! layers under the kernel's one-page option limit. A `rootfs/` without
//! `l/` beside it was provisioned by hand and is bound as it is.
//!
//! Order:
//! 1. `unshare(CLONE_NEWNS)`, everything private: nothing the container
//!    mounts reaches the host, and host mounts made later (other pods)
//!    do not propagate into it (Kubernetes' default `mountPropagation`).
//! 2. the root: the overlay (or a bind of a provisioned tree);
//! 3. the API file systems: `/proc` (here only for the host PID
//!    namespace; in a PID namespace of its own the container's PID 1
//!    mounts it after the clone, see [`confine_proc`]), `/dev`, a fresh
//!    `mqueue` for the pod's IPC namespace, `/sys`, and an empty tmpfs on
//!    `/run` (with systemd's limits for `MountAPIVFS=`: 20 % of RAM, 800k
//!    inodes). A container that is not privileged ([`RootConfig::confined`])
//!    gets runc's: a `/dev` of its own ([`private_dev`]), `/sys` read-only
//!    down to every mount below it, and the paths containerd masks there
//!    ([`MASKED_SYS`]) under empty read-only tmpfs. A privileged one gets
//!    the host's `/dev` and a writable `/sys`, as in Kubernetes;
//! 4. the binds (pod files, `/dev/shm`, volumes), parents before children;
//!    a mount point that is missing in the image is created, resolved
//!    inside the root (`openat2(RESOLVE_IN_ROOT)`), so a symlink in the
//!    image can never send a mount outside it;
//! 5. `readOnlyRootFilesystem`: the root mount alone becomes read-only;
//! 6. `pivot_root` into the root and detach the host's tree.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::libc;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// One bind mount into the container: `src` on the host, `dst` inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub src: String,
    pub dst: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootConfig {
    /// The container directory (see the module doc).
    pub dir: PathBuf,
    /// The image's layers, top first; empty when `dir` is prepared.
    pub layers: Vec<PathBuf>,
    pub binds: Vec<Bind>,
    pub read_only_root: bool,
    /// Not privileged (`--ro-sys`, the flag's name from when it did only
    /// that; installed units keep it): a `/dev` of its own instead of the
    /// host's, `/sys` read-only, and the kernel's informational files
    /// masked ([`MASKED_SYS`], [`confine_proc`]).
    pub confined: bool,
    /// A fresh mqueue on `/dev/mqueue` (the pod's IPC namespace). A
    /// confined container's own `/dev` always gets one (of the joiner's
    /// IPC namespace: the pod's, or the host's with `hostIPC`).
    pub mqueue: bool,
    /// Mount `/proc` now, for the current (host) PID namespace.
    pub host_proc: bool,
}

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

fn cstr(p: &str) -> io::Result<CString> {
    CString::new(p).map_err(|e| err(p, e))
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_IN_ROOT: u64 = 0x10;

/// The container's root before `pivot_root`: an fd of it, and its path in
/// the joiner's (still the host's) tree.
struct Root {
    fd: OwnedFd,
    host: PathBuf,
    /// `/dev` is the container's own tmpfs, not the host's: mount points
    /// may be created in it.
    private_dev: bool,
}

impl Root {
    fn open(host: &Path) -> io::Result<Root> {
        let host = std::fs::canonicalize(host).map_err(|e| err(host.display(), e))?;
        let fd = std::fs::File::open(&host)
            .map_err(|e| err(host.display(), e))?
            .into();
        Ok(Root {
            fd,
            host,
            private_dev: false,
        })
    }

    /// Where `fd` is, as the container will see it (`/` for the root), or
    /// `None` when it is not inside the root.
    fn path_of(&self, fd: &OwnedFd) -> Option<String> {
        let p = std::fs::read_link(fd_path(fd)).ok()?;
        let rel = p.strip_prefix(&self.host).ok()?;
        Some(format!("/{}", rel.to_str()?))
    }
}

/// `openat2(root, path, O_PATH, RESOLVE_IN_ROOT)`: `path` as the
/// container will see it, symlinks and `..` never leaving `root`.
fn open_in_root(root: &Root, path: &str) -> io::Result<OwnedFd> {
    let p = cstr(path.trim_start_matches('/'))?;
    let p = if p.as_bytes().is_empty() {
        cstr(".")?
    } else {
        p
    };
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT,
    };
    // SAFETY: openat2 with a valid dirfd, a NUL-terminated path and a
    // struct of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.fd.as_raw_fd(),
            p.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// [`open_in_root`], creating what is missing: directories, and the last
/// component as a directory or an empty file (a file's mount point). A
/// dangling symlink on the way (an image's `/etc/resolv.conf` pointing into
/// `/run`, say) is followed inside the root and its target created, as runc
/// does. Nothing is created where the resolved place is in `/sys` or
/// `/proc`, nor in `/dev` when that is the host's (a privileged
/// container): `/sys` is the host's, bound in, and no one creates files in
/// a procfs; the check is on where the path really leads, so a symlink in
/// the image cannot get round it. A confined container's own `/dev` is a
/// tmpfs of its mount namespace, where mount points (`/dev/shm`, a volume)
/// are made as runc makes them.
fn mount_point(root: &Root, path: &str, dir: bool) -> io::Result<OwnedFd> {
    mount_point_hops(root, path, dir, 0)
}

fn mount_point_hops(root: &Root, path: &str, dir: bool, hops: u32) -> io::Result<OwnedFd> {
    match open_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(err(path, e)),
        Err(_) => {}
    }
    if hops > 40 {
        return Err(err(path, "too many levels of symbolic links"));
    }
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut prefix = String::new();
    for (i, c) in comps.iter().enumerate() {
        let parent = open_in_root(root, &prefix).map_err(|e| err(&prefix, e))?;
        prefix = format!("{prefix}/{c}");
        if open_in_root(root, &prefix).is_ok() {
            continue;
        }
        let Some(at) = root.path_of(&parent) else {
            return Err(err(path, "leads outside the container root"));
        };
        let name = cstr(c)?;
        // A dangling symlink: create what it points to instead.
        let mut buf = [0u8; 4096];
        // SAFETY: readlinkat on a directory fd we own, one path component,
        // into a buffer of the size we pass.
        let n = unsafe {
            libc::readlinkat(
                parent.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n > 0 {
            let target = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            let base = if target.starts_with('/') {
                target
            } else {
                format!("{}/{target}", at.trim_end_matches('/'))
            };
            let rest = comps[i + 1..].join("/");
            let next = if rest.is_empty() {
                base
            } else {
                format!("{base}/{rest}")
            };
            return mount_point_hops(root, &next, dir, hops + 1);
        }
        let top = at.split('/').find(|c| !c.is_empty());
        if matches!(top, Some("sys" | "proc")) || (top == Some("dev") && !root.private_dev) {
            return Err(err(
                path,
                format!("{prefix} does not exist, and podc does not create mount points in /sys, /proc, or a privileged container's /dev (they are the host's)"),
            ));
        }
        let last = i + 1 == comps.len();
        // SAFETY: *at calls on a directory fd we own, with one path
        // component (no '/'), so nothing is resolved but `name` itself.
        let r = unsafe {
            if last && !dir {
                let fd = libc::openat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o644,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd.min(0)
            } else {
                libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755)
            }
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(err(format!("creating {prefix} in the container root"), e));
            }
        }
    }
    open_in_root(root, path).map_err(|e| err(path, e))
}

/// `/proc/self/fd/N`: a path the mount calls take for an fd.
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_int = 0x8000;

/// Make the mount at `fd` (and with `recursive`, every mount below it)
/// read-only, keeping their other flags: one `mount_setattr` call.
fn read_only(fd: &OwnedFd, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr on an fd we own, an empty path and a struct of
    // the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn do_mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    mount(src, target, fstype, flags, data).map_err(io::Error::from)
}

/// Bind `src` (a host path) at `dst` inside the root, recursively, and
/// read-only with `read_only_too`. The tree is cloned detached
/// (`open_tree`), made read-only while detached, then moved onto the mount
/// point fd: it is never writable at `dst`, and `dst` is not looked up a
/// second time (a sibling container sharing a volume above it cannot swap
/// it for a symlink in between).
fn bind(root: &Root, src: &str, dst: &str, read_only_too: bool) -> io::Result<()> {
    let is_dir = std::fs::metadata(src).map_err(|e| err(src, e))?.is_dir();
    let target = mount_point(root, dst, is_dir)?;
    bind_at(src, &target, dst, read_only_too)
}

/// [`bind`] onto an opened mount point.
fn bind_at(src: &str, target: &OwnedFd, dst: &str, read_only_too: bool) -> io::Result<()> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let c_src = cstr(src)?;
    // SAFETY: open_tree with a NUL-terminated path; returns a new fd.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_src.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(err(
            format!("bind {src} on {dst}"),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: a new fd we own.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    if read_only_too {
        read_only(&tree, true).map_err(|e| err(format!("read-only {dst}"), e))?;
    }
    // SAFETY: move_mount between two fds we own, with empty paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(err(
            format!("bind {src} on {dst}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The root's own `/NAME` for an API file system (`proc`, `dev`, `sys`,
/// `run`), created when the image lacks it. It must be a real directory:
/// a symlink there (to a volume's mount path, say) could hide what podc
/// mounts under something the container controls.
fn api_dir(root: &Root, name: &str) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: *at calls on the root's fd with one path component.
    let fd = unsafe {
        let mut fd = libc::openat(
            root.fd.as_raw_fd(),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        );
        if fd < 0 && *libc::__errno_location() == libc::ENOENT {
            libc::mkdirat(root.fd.as_raw_fd(), c.as_ptr(), 0o755);
            fd = libc::openat(
                root.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            );
        }
        fd
    };
    if fd < 0 {
        return Err(err(
            format!("/{name} in the container root"),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fstat on an fd we own (O_PATH fds allow it); with
    // O_NOFOLLOW a symlink's fd is the link itself (S_IFLNK).
    let is_dir = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd.as_raw_fd(), &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
    };
    if !is_dir {
        return Err(err(
            format!("/{name}"),
            "is not a directory in the image; podc mounts the container's own there",
        ));
    }
    Ok(fd)
}

/// A device node of a confined container's `/dev`: a character device
/// `name` with the kernel's fixed numbers (Documentation/admin-guide/
/// devices.txt), mode 0666, owned by root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevNode {
    pub name: &'static str,
    pub major: u32,
    pub minor: u32,
}

/// runc's default devices. The unit's `DevicePolicy=closed` allows exactly
/// these (with `/dev/ptmx` and the pts): it stays the second wall, so a
/// device added here (a device plugin, say) needs a `DeviceAllow=` too.
pub const DEVICES: &[DevNode] = &[
    DevNode {
        name: "null",
        major: 1,
        minor: 3,
    },
    DevNode {
        name: "zero",
        major: 1,
        minor: 5,
    },
    DevNode {
        name: "full",
        major: 1,
        minor: 7,
    },
    DevNode {
        name: "random",
        major: 1,
        minor: 8,
    },
    DevNode {
        name: "urandom",
        major: 1,
        minor: 9,
    },
    DevNode {
        name: "tty",
        major: 5,
        minor: 0,
    },
];

/// The links runc puts in `/dev` (name, target); `ptmx` reaches the
/// container's own devpts instance. `core` only where the kernel has a
/// `/proc/kcore` (runc's rule; it is masked anyway).
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// What containerd masks under `/sys` (`oci.populateDefaultUnixSpec`),
/// with debugfs and tracefs, which a read-only bind still lets a container
/// read (kernel addresses, every process's trace events).
pub const MASKED_SYS: &[&str] = &[
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/kernel/debug",
    "/sys/kernel/tracing",
];

/// What containerd masks under `/proc`, with `/proc/interrupts`, which
/// Kubernetes (1.34) and Docker add. Missing ones are skipped.
pub const MASKED_PROC: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];

/// Paths under /proc that container runtimes keep read-only.
pub const READONLY_PROC: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A confined container's `/dev`, as runc makes it: a tmpfs (`nosuid`,
/// `mode=755,size=65536k`) of the container's mount namespace only, with
/// `devices` made by `mknod` (the joiner is real root in the host's user
/// namespace, so no bind of the host's nodes is needed, and nothing of the
/// host's `/dev` is reachable from it), a devpts instance of its own
/// (`newinstance`: the host's pseudo-terminals are not there), and the
/// standard links. `/dev/shm` and `/dev/mqueue` come after, as mounts.
fn private_dev(root: &Root, devices: &[DevNode]) -> io::Result<()> {
    let dev = api_dir(root, "dev")?;
    do_mount(
        Some("tmpfs"),
        &fd_path(&dev),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| err("mount /dev", e))?;
    // Looked up again: the tmpfs now (the old fd is the directory under it).
    let dev = api_dir(root, "dev")?;
    for d in devices {
        let name = cstr(d.name)?;
        // SAFETY: *at calls on the new tmpfs's fd with one path component.
        let r = unsafe {
            let r = libc::mknodat(
                dev.as_raw_fd(),
                name.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(d.major, d.minor),
            );
            // the joiner's umask applied to mknod's mode
            if r == 0 {
                libc::fchmodat(dev.as_raw_fd(), name.as_ptr(), 0o666, 0)
            } else {
                r
            }
        };
        if r != 0 {
            return Err(err(
                format!("mknod /dev/{}", d.name),
                io::Error::last_os_error(),
            ));
        }
    }
    let pts = cstr("pts")?;
    // SAFETY: mkdirat on the tmpfs's fd with one path component.
    if unsafe { libc::mkdirat(dev.as_raw_fd(), pts.as_ptr(), 0o755) } != 0 {
        return Err(err("mkdir /dev/pts", io::Error::last_os_error()));
    }
    let pts = open_in_root(root, "/dev/pts").map_err(|e| err("/dev/pts", e))?;
    do_mount(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(|e| err("mount /dev/pts", e))?;
    let kcore = Path::new("/proc/kcore").exists();
    for (name, target) in DEV_LINKS.iter().filter(|(n, _)| *n != "core" || kcore) {
        let (c_name, c_target) = (cstr(name)?, cstr(target)?);
        // SAFETY: symlinkat on the tmpfs's fd with one path component.
        if unsafe { libc::symlinkat(c_target.as_ptr(), dev.as_raw_fd(), c_name.as_ptr()) } != 0 {
            return Err(err(format!("/dev/{name}"), io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Mask what `target` (an `O_PATH` fd) is: a directory under an empty
/// read-only tmpfs, anything else under `null` (the container's
/// `/dev/null`) bound read-only; as runc does for `maskedPaths`.
fn mask_at(target: &OwnedFd, null: &str, what: &str) -> io::Result<()> {
    // SAFETY: fstat on an fd we own.
    let mode = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(target.as_raw_fd(), &mut st) != 0 {
            return Err(err(what, io::Error::last_os_error()));
        }
        st.st_mode & libc::S_IFMT
    };
    match mode {
        libc::S_IFDIR => do_mount(
            Some("tmpfs"),
            &fd_path(target),
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=555"),
        )
        .map_err(|e| err(format!("mask {what}"), e)),
        // a symlink (none is on the lists) is left alone: a mount on it
        // would cover the link, not what it names
        libc::S_IFLNK => Ok(()),
        _ => bind_at(null, target, what, true),
    }
}

/// A confined container's `/proc`, once mounted (after `pivot_root`):
/// [`READONLY_PROC`] read-only and [`MASKED_PROC`] masked with the
/// container's `/dev/null`. Nothing here can be swapped by the container:
/// its processes have not run yet in this mount namespace, and procfs
/// entries cannot be replaced.
pub fn confine_proc() -> io::Result<()> {
    for p in READONLY_PROC {
        bind_read_only(p).map_err(|e| err(format!("read-only {p}"), e))?;
    }
    for p in MASKED_PROC {
        let c = cstr(p)?;
        // SAFETY: open with a NUL-terminated path; the fd is owned at once.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                continue;
            }
            return Err(err(p, e));
        }
        // SAFETY: a new fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        mask_at(&fd, "/dev/null", p)?;
    }
    Ok(())
}

/// Bind `path` onto itself read-only (skipped when it does not exist).
fn bind_read_only(path: &str) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let none = None::<&str>;
    do_mount(
        Some(path),
        path,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )?;
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC;
    do_mount(none, path, none, ro, none)
}

/// The overlay options for the prepared container directory `dir`:
/// `lowerdir=l/0:l/1,upperdir=upper,workdir=work`, or `None` for a
/// provisioned `rootfs/` (no `l/`).
pub(crate) fn overlay_options(dir: &Path) -> io::Result<Option<String>> {
    let links = dir.join("l");
    let entries = match std::fs::read_dir(&links) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(links.display(), e)),
    };
    let mut n: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    n.sort_unstable();
    if n.is_empty() || n.iter().enumerate().any(|(i, v)| *v as usize != i) {
        return Err(err(
            links.display(),
            "expected layer links 0, 1, ... (podc rootfs prepare)",
        ));
    }
    let lower: Vec<String> = n.iter().map(|i| format!("l/{i}")).collect();
    Ok(Some(format!(
        "lowerdir={},upperdir=upper,workdir=work",
        lower.join(":")
    )))
}

/// A `rootfs/` provisioned by hand: populated, with no writable layer
/// beside it (the rule of `podc rootfs prepare`).
fn provisioned(dir: &Path) -> bool {
    !dir.join("upper").exists()
        && std::fs::read_dir(dir.join("rootfs")).is_ok_and(|mut d| d.next().is_some())
}

/// Lay out `dir` for an overlay of `layers` (top first): an empty
/// writable layer and the `l/N` links. A layer that is gone from the store
/// (the image was removed since the build) fails the start with
/// Kubernetes' reason for a missing image.
pub(crate) fn fresh_layer(dir: &Path, layers: &[PathBuf]) -> io::Result<()> {
    for l in layers {
        if !l.is_dir() {
            return Err(err(
                "ErrImageNeverPull",
                format!(
                    "image layer {} is not in the local store; pull or import the image again and re-apply",
                    l.display()
                ),
            ));
        }
    }
    for name in ["upper", "work", "l"] {
        let p = dir.join(name);
        // What the container wrote last time: deep trees, links, nodes.
        match crate::perms::remove_tree(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(err(format!("removing {}", p.display()), e))
            }
            _ => {}
        }
    }
    for name in ["upper", "work", "l", "rootfs"] {
        let p = dir.join(name);
        std::fs::create_dir_all(&p).map_err(|e| err(p.display(), e))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("work"), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| err("work", e))?;
    // `upper/` is the container's `/` (the overlay root takes its mode):
    // every container user traverses it, whatever umask prepared it. The
    // host path to it stays root-only (crate::perms).
    std::fs::set_permissions(dir.join("upper"), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| err("upper", e))?;
    for (i, l) in layers.iter().enumerate() {
        std::os::unix::fs::symlink(l, dir.join("l").join(i.to_string()))
            .map_err(|e| err(format!("linking layer {}", l.display()), e))?;
    }
    Ok(())
}

/// Set up the root and `pivot_root` into it (see the module doc). The
/// working directory is `/` afterwards.
pub fn setup(cfg: &RootConfig) -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| err("unshare mount namespace", e))?;
    let none = None::<&str>;
    do_mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| err("private mounts", e))?;

    // 2. the root
    let dir = &cfg.dir;
    if !cfg.layers.is_empty() && !provisioned(dir) {
        fresh_layer(dir, &cfg.layers)?;
    }
    std::env::set_current_dir(dir).map_err(|e| err(dir.display(), e))?;
    match overlay_options(dir)? {
        Some(opts) => do_mount(
            Some("overlay"),
            "rootfs",
            Some("overlay"),
            MsFlags::empty(),
            Some(&opts),
        )
        .map_err(|e| err(format!("mount overlay on {}/rootfs", dir.display()), e))?,
        None => do_mount(
            Some("rootfs"),
            "rootfs",
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(|e| err(format!("bind {}/rootfs", dir.display()), e))?,
    }
    let root = Root::open(&dir.join("rootfs"))?;

    // 3. API file systems
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = api_dir(&root, "proc")?;
    if cfg.host_proc {
        do_mount(Some("proc"), &fd_path(&proc_dir), Some("proc"), nodev, none)
            .map_err(|e| err("mount /proc", e))?;
    }
    drop(proc_dir);
    let mut root = root;
    if cfg.confined {
        private_dev(&root, DEVICES)?;
        root.private_dev = true;
    } else {
        bind_at("/dev", &api_dir(&root, "dev")?, "/dev", false)?;
    }
    if cfg.mqueue || cfg.confined {
        let mq = mount_point(&root, "/dev/mqueue", true)?;
        do_mount(Some("mqueue"), &fd_path(&mq), Some("mqueue"), nodev, none)
            .map_err(|e| err("mount /dev/mqueue", e))?;
    }
    bind_at("/sys", &api_dir(&root, "sys")?, "/sys", cfg.confined)?;
    if cfg.confined {
        let null = format!("{}/dev/null", root.host.display());
        for p in MASKED_SYS {
            match open_in_root(&root, p) {
                Ok(fd) => mask_at(&fd, &null, p)?,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(err(p, e)),
            }
        }
    }
    let run = api_dir(&root, "run")?;
    do_mount(
        Some("tmpfs"),
        &fd_path(&run),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755,size=20%,nr_inodes=800k"),
    )
    .map_err(|e| err("mount /run", e))?;
    drop(run);

    // 4. binds, parents first (a stable sort keeps the given order)
    let mut binds: Vec<&Bind> = cfg.binds.iter().collect();
    binds.sort_by_key(|b| b.dst.split('/').filter(|c| !c.is_empty()).count());
    for b in binds {
        bind(&root, &b.src, &b.dst, b.read_only)?;
    }

    // 5. readOnlyRootFilesystem: the root mount only, not what is on it
    // (`root.fd` was opened after the root was mounted: it is that mount.)
    if cfg.read_only_root {
        read_only(&root.fd, false).map_err(|e| err("read-only root", e))?;
    }

    // 6. pivot_root(".", "."): the old root ends up on top of the new
    // one, so it can be detached without a directory to put it in.
    // SAFETY: fchdir to a directory fd we own.
    if unsafe { libc::fchdir(root.fd.as_raw_fd()) } != 0 {
        return Err(err("chdir to the root", io::Error::last_os_error()));
    }
    let dot: &CStr = c".";
    // SAFETY: pivot_root with two NUL-terminated paths.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(err("pivot_root", io::Error::last_os_error()));
    }
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| err("detach the host's root", e))?;
    std::env::set_current_dir("/").map_err(|e| err("chdir /", e))?;
    Ok(())
}

/// `chdir` to the container's working directory, creating it as runc does
/// when the image lacks it.
pub fn enter_working_dir(cwd: &str) -> io::Result<()> {
    if std::env::set_current_dir(cwd).is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(cwd)
        .map_err(|e| err(format!("creating working directory {cwd}"), e))?;
    std::env::set_current_dir(cwd).map_err(|e| err(format!("working directory {cwd}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_from_layer_links() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(overlay_options(t.path()).unwrap(), None);
        std::fs::create_dir(t.path().join("l")).unwrap();
        assert!(overlay_options(t.path()).is_err(), "no layers");
        for i in [1, 0, 2] {
            std::os::unix::fs::symlink("/x", t.path().join(format!("l/{i}"))).unwrap();
        }
        assert_eq!(
            overlay_options(t.path()).unwrap().unwrap(),
            "lowerdir=l/0:l/1:l/2,upperdir=upper,workdir=work"
        );
        std::fs::remove_file(t.path().join("l/1")).unwrap();
        assert!(overlay_options(t.path()).is_err(), "a gap");
    }

    #[test]
    fn every_start_gets_a_fresh_writable_layer() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l0) = (t.path().join("base"), t.path().join("top"));
        std::fs::create_dir(&l1).unwrap();
        std::fs::create_dir(&l0).unwrap();
        let dir = t.path().join("c");
        std::fs::create_dir_all(dir.join("upper/etc")).unwrap();
        std::fs::write(dir.join("upper/etc/written"), b"by the last run").unwrap();
        std::fs::create_dir_all(dir.join("l/7")).unwrap();
        fresh_layer(&dir, &[l0.clone(), l1.clone()]).unwrap();
        assert_eq!(std::fs::read_dir(dir.join("upper")).unwrap().count(), 0);
        assert_eq!(std::fs::read_link(dir.join("l/0")).unwrap(), l0);
        assert_eq!(std::fs::read_link(dir.join("l/1")).unwrap(), l1);
        assert!(dir.join("rootfs").is_dir() && dir.join("work").is_dir());
        assert_eq!(
            overlay_options(&dir).unwrap().unwrap(),
            "lowerdir=l/0:l/1,upperdir=upper,workdir=work"
        );
        // a tree provisioned by hand is left alone
        let hand = t.path().join("hand");
        std::fs::create_dir_all(hand.join("rootfs/bin")).unwrap();
        assert!(provisioned(&hand) && !provisioned(&dir));
        // a layer removed from the store since the build
        std::fs::remove_dir(&l1).unwrap();
        let e = fresh_layer(&dir, &[l0, l1]).unwrap_err();
        assert!(e.to_string().contains("ErrImageNeverPull"), "{e}");
    }

    #[test]
    fn api_file_systems_go_on_real_directories() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        std::fs::create_dir_all(r.join("data/p")).unwrap();
        std::os::unix::fs::symlink("/data/p", r.join("proc")).unwrap();
        std::fs::write(r.join("sys"), b"").unwrap();
        let root = Root::open(&r).unwrap();
        for name in ["proc", "sys"] {
            let e = api_dir(&root, name).unwrap_err();
            assert!(e.to_string().contains("is not a directory"), "{e}");
        }
        api_dir(&root, "dev").unwrap();
        assert!(r.join("dev").is_dir(), "a missing one is created");
    }

    #[test]
    fn mount_points_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        for d in ["etc", "data", "outside"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // absolute and relative links, as an image could plant them: they
        // resolve inside the root
        std::os::unix::fs::symlink("/data", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../outside", r.join("etc/rel")).unwrap();
        std::os::unix::fs::symlink(&outside, r.join("dangling")).unwrap();
        let root = Root::open(&r).unwrap();
        mount_point(&root, "/abs/x", false).unwrap();
        mount_point(&root, "/etc/rel/y", true).unwrap();
        mount_point(&root, "/../../z", true).unwrap();
        assert!(r.join("data/x").is_file());
        assert!(r.join("outside/y").is_dir());
        assert!(r.join("z").is_dir());
        // a link to a place the root does not have is followed inside the
        // root, and its target made there, as runc does
        mount_point(&root, "/dangling/w", true).unwrap();
        assert!(r
            .join(outside.strip_prefix("/").unwrap())
            .join("w")
            .is_dir());
        std::os::unix::fs::symlink("../run/resolve/stub.conf", r.join("etc/resolv.conf")).unwrap();
        mount_point(&root, "/etc/resolv.conf", false).unwrap();
        assert!(r.join("run/resolve/stub.conf").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // nothing is created in /dev, /sys or /proc: not as written, and
        // not through a symlink that leads there
        std::fs::create_dir_all(r.join("dev")).unwrap();
        for p in ["/dev/nope", "/sys/nope/deeper"] {
            let e = mount_point(&root, p, true).unwrap_err();
            assert!(
                e.to_string().contains("does not create mount points"),
                "{e}"
            );
        }
        std::os::unix::fs::symlink("/dev", r.join("devlink")).unwrap();
        std::os::unix::fs::symlink("/dev/nope2", r.join("etc/dangling-into-dev")).unwrap();
        for p in ["/devlink/nope", "/etc/dangling-into-dev"] {
            let e = mount_point(&root, p, false).unwrap_err();
            assert!(
                e.to_string().contains("does not create mount points"),
                "{e}"
            );
        }
        assert_eq!(std::fs::read_dir(r.join("dev")).unwrap().count(), 0);
        // a confined container's /dev is its own tmpfs: mount points are
        // made there (not in /sys or /proc)
        let own = Root {
            private_dev: true,
            ..Root::open(&r).unwrap()
        };
        mount_point(&own, "/dev/shm", true).unwrap();
        assert!(r.join("dev/shm").is_dir());
        assert!(mount_point(&own, "/sys/nope", true).is_err());
        // an existing mount point is opened, not replaced
        std::fs::write(r.join("etc/hosts"), b"keep").unwrap();
        mount_point(&root, "/etc/hosts", false).unwrap();
        assert_eq!(std::fs::read(r.join("etc/hosts")).unwrap(), b"keep");
    }
}
