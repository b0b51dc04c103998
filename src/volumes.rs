//! `podc volumes setup|teardown`: prepare a pod's volumes on the host before
//! any of its containers starts, and undo the run-time part afterwards.
//!
//! The infra unit runs `setup` as `ExecStartPre=` and `teardown` as
//! `ExecStopPost=`, so a failed setup fails the infra unit and no container
//! starts (they are `BindsTo=`/`After=` it). Input is the pod's
//! `<state-dir>/data/volumes.json` written by `podc build` (`plan::VolumeSpec`).
//!
//! - emptyDir on disk: `<state-dir>/volumes/<name>`, created 0777 and kept
//!   across restarts (it goes with the state dir when the pod is deleted).
//!   `sizeLimit` is *reported*, not enforced (docs/volumes.md).
//! - emptyDir `medium: Memory`: a tmpfs at `<run-dir>/<name>`, mode 0777,
//!   `size=` from `sizeLimit`.
//! - configMap/secret: a fresh tmpfs at `<run-dir>/<name>` (the run dir is
//!   root-only), filled from `<state-dir>/data/<source>` with each file's
//!   mode, then made read-only. Every open goes through `openat2` with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: no write can leave the volume
//!   and no read can leave the data dir, whatever the JSON says.
//! - hostPath: Kubernetes' type checks (kubelet `checkTypeInternal`), with
//!   its messages. Every check runs before anything is created or mounted.
//! - subPaths (when volumes.json lists them): resolved beneath the volume
//!   without following any symlink and bind-mounted at a pin under
//!   `<run-dir>/.subpath/`, which the container binds instead.
//!
//! Setup converges: tmpfs mounts left by an earlier run are replaced (or, for
//! a Memory emptyDir, kept and resized), directories that exist are kept.
//! A failed setup undoes its mounts before it exits.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxAttributes, StatxFlags, CWD};
use serde::Deserialize;

/// `volumes.json` as `podc build` writes it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub volumes: Vec<Volume>,
}

/// One volume (mirrors `plan::VolumeSpec`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    pub location: PathBuf,
    pub kind: Kind,
    #[serde(default)]
    pub tmpfs: bool,
    #[serde(default)]
    pub size_limit: Option<u64>,
    #[serde(default)]
    pub host_path_type: Option<String>,
    #[serde(default)]
    pub files: Vec<VolumeFile>,
    /// volumeMounts' `subPath`s of this volume, each resolved safely and
    /// bind-mounted at `pin` (`<run-dir>/.subpath/<single component>`),
    /// which the container binds instead of `location/subPath`.
    #[serde(default)]
    pub sub_paths: Vec<SubPath>,
}

/// One `subPath` to pin.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubPath {
    /// Relative to the volume.
    pub path: String,
    /// Where setup bind-mounts it.
    pub pin: PathBuf,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    EmptyDir,
    HostPath,
    ConfigMap,
    Secret,
}

/// A configMap/secret file: `data/<source>` → `<volume>/<path>` with `mode`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeFile {
    pub source: String,
    pub path: String,
    pub mode: u32,
}

/// Mode of the root of a configMap/secret tmpfs and of the directories made
/// for `items[].path`: any container user can reach the files (their own
/// mode decides who reads them); host users cannot, the run dir is 0700.
const DATA_DIR_MODE: u32 = 0o755;
/// Kubernetes creates emptyDir directories world-writable.
const EMPTY_DIR_MODE: u32 = 0o777;
/// `<run-dir>` (and `<state-dir>/volumes`): root only.
const PRIVATE_DIR_MODE: u32 = crate::perms::PRIVATE_DIR_MODE;
/// `<run-dir>/.subpath/`: pinned subPaths (a volume name cannot start
/// with a dot, so it never clashes with one).
pub const SUBPATH_DIR: &str = ".subpath";

/// Split a relative path into its components, refusing anything that could
/// leave the directory it is relative to: absolute paths, `..`, `.`, empty
/// components, NUL.
pub fn relative_components(path: &str) -> Result<Vec<&str>> {
    if path.is_empty() {
        bail!("empty path");
    }
    if path.contains('\0') {
        bail!("{path:?}: contains NUL");
    }
    if path.starts_with('/') {
        bail!("{path:?}: must be relative");
    }
    let parts: Vec<&str> = path.split('/').collect();
    for p in &parts {
        match *p {
            "" => bail!("{path:?}: empty path component"),
            "." | ".." => bail!("{path:?}: must not contain {p:?}"),
            _ => {}
        }
    }
    Ok(parts)
}

/// A name that becomes exactly one path component.
fn check_component(what: &str, name: &str) -> Result<()> {
    match relative_components(name) {
        Ok(p) if p.len() == 1 => Ok(()),
        _ => bail!("{what} {name:?} is not a single path component"),
    }
}

/// An absolute path without `.`/`..` components.
fn check_absolute(what: &str, p: &Path) -> Result<()> {
    if !p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        bail!("{what} {} must be absolute and normalized", p.display());
    }
    Ok(())
}

/// Check the whole spec against the directories setup was given: every
/// location is where podc puts that kind of volume, every file path stays
/// inside its volume. Returns all problems at once.
pub fn check_spec(spec: &Spec, state_dir: &Path, run_dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut pins = std::collections::BTreeSet::new();
    for v in &spec.volumes {
        let mut err = |e: String| errors.push(format!("volume {:?}: {e}", v.name));
        if let Err(e) = check_component("name", &v.name) {
            err(e.to_string());
            continue;
        }
        if !seen.insert(&v.name) {
            err("defined twice".into());
        }
        let expected = match v.kind {
            Kind::EmptyDir if !v.tmpfs => Some(state_dir.join("volumes").join(&v.name)),
            Kind::EmptyDir | Kind::ConfigMap | Kind::Secret => Some(run_dir.join(&v.name)),
            Kind::HostPath => None,
        };
        match expected {
            Some(p) if p != v.location => err(format!(
                "location {} is not {}",
                v.location.display(),
                p.display()
            )),
            Some(_) => {}
            None => {
                if let Err(e) = check_absolute("hostPath", &v.location) {
                    err(e.to_string());
                }
                if let Err(e) = HostPathType::parse(v.host_path_type.as_deref().unwrap_or("")) {
                    err(e.to_string());
                }
            }
        }
        if matches!(v.kind, Kind::ConfigMap | Kind::Secret) && !v.tmpfs {
            err("configMap/secret volumes live on tmpfs only".into());
        }
        if !matches!(v.kind, Kind::ConfigMap | Kind::Secret) && !v.files.is_empty() {
            err("only configMap/secret volumes have files".into());
        }
        for sp in &v.sub_paths {
            if let Err(e) = relative_components(&sp.path) {
                err(format!("subPath {e}"));
            }
            let pin_ok = sp.pin.parent() == Some(run_dir.join(SUBPATH_DIR).as_path())
                && sp
                    .pin
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| check_component("pin", n).is_ok());
            if !pin_ok {
                err(format!(
                    "subPath pin {} is not directly under {}",
                    sp.pin.display(),
                    run_dir.join(SUBPATH_DIR).display()
                ));
            }
            if !pins.insert(&sp.pin) {
                err(format!("subPath pin {} used twice", sp.pin.display()));
            }
        }
        let mut paths = std::collections::BTreeSet::new();
        for f in &v.files {
            if let Err(e) = relative_components(&f.source) {
                err(format!("source {e}"));
            }
            if let Err(e) = relative_components(&f.path) {
                err(format!("path {e}"));
            }
            if f.mode > 0o777 {
                err(format!("{}: mode {:o} is above 0777", f.path, f.mode));
            }
            if !paths.insert(f.path.as_str()) {
                err(format!("{}: listed twice", f.path));
            }
        }
    }
    errors
}

/// tmpfs mount options (`-o`): `mode=` and, from `sizeLimit`, `size=` in
/// KiB rounded up (10Mi → `size=10240k`).
pub fn tmpfs_options(mode: u32, size_limit: Option<u64>) -> String {
    match size_limit {
        Some(b) => format!("mode={mode:04o},size={}k", b.div_ceil(1024).max(1)),
        None => format!("mode={mode:04o}"),
    }
}

/// hostPath `type`, as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPathType {
    Unset,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

/// What is at a hostPath (following symlinks, as kubelet's `os.Stat` does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl Found {
    fn of(path: &Path) -> io::Result<Found> {
        match fs::metadata(path) {
            Ok(m) => {
                let t = m.file_type();
                Ok(if t.is_dir() {
                    Found::Directory
                } else if t.is_file() {
                    Found::File
                } else if t.is_socket() {
                    Found::Socket
                } else if t.is_char_device() {
                    Found::CharDevice
                } else if t.is_block_device() {
                    Found::BlockDevice
                } else {
                    Found::Other
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Missing),
            Err(e) => Err(e),
        }
    }
}

/// What setup does for a hostPath once every check passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPathAction {
    Nothing,
    /// `mkdir -p`, mode 0755 (DirectoryOrCreate).
    CreateDirectory,
    /// An empty file, mode 0644, parent not created (FileOrCreate).
    CreateFile,
}

impl HostPathType {
    pub fn parse(s: &str) -> Result<HostPathType> {
        Ok(match s {
            "" => HostPathType::Unset,
            "DirectoryOrCreate" => HostPathType::DirectoryOrCreate,
            "Directory" => HostPathType::Directory,
            "FileOrCreate" => HostPathType::FileOrCreate,
            "File" => HostPathType::File,
            "Socket" => HostPathType::Socket,
            "CharDevice" => HostPathType::CharDevice,
            "BlockDevice" => HostPathType::BlockDevice,
            other => bail!("{other} is an invalid volume type"),
        })
    }

    /// kubelet's `checkTypeInternal`, with its messages; a missing path
    /// says so.
    pub fn check(self, path: &Path, found: Found) -> Result<HostPathAction, String> {
        use HostPathType as T;
        let want = match self {
            T::Unset => return Ok(HostPathAction::Nothing),
            T::DirectoryOrCreate if found == Found::Missing => {
                return Ok(HostPathAction::CreateDirectory)
            }
            T::FileOrCreate if found == Found::Missing => return Ok(HostPathAction::CreateFile),
            T::DirectoryOrCreate | T::Directory => (Found::Directory, "a directory"),
            T::FileOrCreate | T::File => (Found::File, "a file"),
            T::Socket => (Found::Socket, "a socket file"),
            T::CharDevice => (Found::CharDevice, "a character device"),
            T::BlockDevice => (Found::BlockDevice, "a block device"),
        };
        if found == want.0 {
            return Ok(HostPathAction::Nothing);
        }
        let why = if found == Found::Missing {
            " (it does not exist)"
        } else {
            ""
        };
        Err(format!(
            "hostPath type check failed: {} is not {}{why}",
            path.display(),
            want.1
        ))
    }
}

/// Mount points at or below `under`, from `/proc/self/mountinfo` text,
/// deepest (last mounted) first: the order to unmount them in.
pub fn mounts_under(mountinfo: &str, under: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(under))
        .collect();
    // Later lines are mounted later (stacked or nested): undo them first;
    // among the rest, children before parents.
    out.reverse();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Read and parse `<state-dir>/data/volumes.json`; `None` when the pod has
/// no volumes file (nothing to do).
pub fn read_spec(state_dir: &Path) -> Result<Option<Spec>> {
    let path = state_dir.join("data/volumes.json");
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let spec =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(spec))
}

/// Messages for the journal (stderr of the infra unit's ExecStartPre=).
fn note(msg: &str) {
    let _ = writeln!(io::stderr(), "podc volumes: {msg}");
}

/// `podc volumes setup`.
pub fn setup(state_dir: &Path, run_dir: &Path) -> Result<()> {
    check_absolute("--state-dir", state_dir)?;
    check_absolute("--run-dir", run_dir)?;
    let Some(spec) = read_spec(state_dir)? else {
        return Ok(());
    };
    let errors = check_spec(&spec, state_dir, run_dir);
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }

    // 1. Every hostPath check first: a wrong type fails the pod before
    //    anything is created or mounted.
    let mut actions = Vec::new();
    let mut errors = Vec::new();
    for v in spec.volumes.iter().filter(|v| v.kind == Kind::HostPath) {
        let ty = HostPathType::parse(v.host_path_type.as_deref().unwrap_or(""))?;
        let found = if ty == HostPathType::Unset {
            Found::Other
        } else {
            Found::of(&v.location)
                .with_context(|| format!("volume {:?}: {}", v.name, v.location.display()))?
        };
        match ty.check(&v.location, found) {
            Ok(a) => actions.push((v, a)),
            Err(e) => errors.push(format!("volume {:?}: {e}", v.name)),
        }
    }
    // FileOrCreate never creates the parent: check that before creating
    // anything either.
    for (v, a) in &actions {
        if *a == HostPathAction::CreateFile {
            let parent = v.location.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                errors.push(format!(
                    "volume {:?}: hostPath {}: parent directory {} does not exist \
                     (FileOrCreate does not create it)",
                    v.name,
                    v.location.display(),
                    parent.display()
                ));
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }

    let result = setup_checked(&spec, state_dir, run_dir, &actions);
    if result.is_err() {
        // Leave nothing half-mounted: the infra unit fails, its
        // ExecStopPost= runs teardown too, but do not rely on it.
        if let Err(e) = unmount_and_remove(run_dir) {
            note(&format!("cleaning up after the failed setup: {e:#}"));
        }
    }
    result
}

fn setup_checked(
    spec: &Spec,
    state_dir: &Path,
    run_dir: &Path,
    host_actions: &[(&Volume, HostPathAction)],
) -> Result<()> {
    for (v, a) in host_actions {
        let ctx = || format!("volume {:?}: hostPath {}", v.name, v.location.display());
        match a {
            HostPathAction::Nothing => {}
            HostPathAction::CreateDirectory => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&v.location)
                    .with_context(ctx)?;
                note(&format!(
                    "created hostPath directory {}",
                    v.location.display()
                ));
            }
            HostPathAction::CreateFile => {
                // O_CREAT without O_EXCL: a file created meanwhile is fine.
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                    .open(&v.location)
                    .with_context(ctx)?;
                note(&format!("created hostPath file {}", v.location.display()));
            }
        }
    }

    let disk: Vec<&Volume> = spec
        .volumes
        .iter()
        .filter(|v| v.kind == Kind::EmptyDir && !v.tmpfs)
        .collect();
    if !disk.is_empty() {
        private_dir(&state_dir.join("volumes"))?;
        for v in disk {
            match fs::symlink_metadata(&v.location) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!(
                    "volume {:?}: {} exists and is not a directory",
                    v.name,
                    v.location.display()
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&v.location)
                        .with_context(|| format!("creating {}", v.location.display()))?;
                    fs::set_permissions(&v.location, fs::Permissions::from_mode(EMPTY_DIR_MODE))?;
                }
                Err(e) => return Err(e.into()),
            }
            report_usage(v);
        }
    }

    let on_tmpfs: Vec<&Volume> = spec.volumes.iter().filter(|v| v.tmpfs).collect();
    if !on_tmpfs.is_empty() {
        tmpfs_volumes(&on_tmpfs, state_dir, run_dir)?;
    }
    pin_sub_paths(spec, run_dir)
}

fn tmpfs_volumes(on_tmpfs: &[&Volume], state_dir: &Path, run_dir: &Path) -> Result<()> {
    private_dir(run_dir)?;
    let data = open_dir(CWD, &state_dir.join("data"), ResolveFlags::empty())
        .with_context(|| format!("opening {}/data", state_dir.display()))?;
    for &v in on_tmpfs {
        let ctx = || format!("volume {:?}", v.name);
        match fs::symlink_metadata(&v.location) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{}: {} is not a directory", ctx(), v.location.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(PRIVATE_DIR_MODE)
                    .create(&v.location)
                    .with_context(ctx)?;
            }
            Err(e) => return Err(e).with_context(ctx),
        }
        if v.kind == Kind::EmptyDir {
            memory_empty_dir(v).with_context(ctx)?;
        } else {
            data_volume(v, &data).with_context(ctx)?;
        }
    }
    Ok(())
}

/// Pin every subPath: resolve it beneath its volume without following any
/// symlink (creating a missing one as a directory with the volume root's
/// mode, as kubelet does), and bind-mount the opened file descriptor at its
/// pin. The container binds the pin, so a symlink planted in the volume
/// later changes nothing: the mount holds the inode resolved here.
fn pin_sub_paths(spec: &Spec, run_dir: &Path) -> Result<()> {
    let all: Vec<(&Volume, &SubPath)> = spec
        .volumes
        .iter()
        .flat_map(|v| v.sub_paths.iter().map(move |sp| (v, sp)))
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    private_dir(run_dir)?;
    private_dir(&run_dir.join(SUBPATH_DIR))?;
    for (v, sp) in all {
        pin_sub_path(v, sp)
            .with_context(|| format!("volume {:?}: subPath {:?}", v.name, sp.path))?;
    }
    Ok(())
}

fn pin_sub_path(v: &Volume, sp: &SubPath) -> Result<()> {
    let root = open_dir(CWD, &v.location, ResolveFlags::empty())?;
    let root_mode = rustix::fs::fstat(&root)?.st_mode & 0o7777;
    let parts = relative_components(&sp.path)?;
    let mut dir: Option<OwnedFd> = None;
    let mut target: Option<OwnedFd> = None;
    for (i, part) in parts.iter().enumerate() {
        let at = dir.as_ref().unwrap_or(&root);
        let last = i + 1 == parts.len();
        let open = |at: &OwnedFd| {
            rustix::fs::openat2(
                at,
                *part,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            )
        };
        let fd = match open(at) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(at, *part, Mode::from_raw_mode(root_mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e).with_context(|| format!("creating {part}")),
                }
                let fd = open(at).with_context(|| format!("opening {part}"))?;
                // Only a directory gets the mode: in a volume another
                // container writes to meanwhile, the name may now be a
                // hard link to any file of that file system (a host
                // file in a hostPath volume), which must keep its mode.
                if rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode)
                    == rustix::fs::FileType::Directory
                {
                    rustix::fs::chmod(
                        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)),
                        Mode::from_raw_mode(root_mode),
                    )?;
                }
                fd
            }
            Err(rustix::io::Errno::LOOP) => bail!("{part} is a symlink"),
            Err(e) => return Err(e).with_context(|| format!("opening {part}")),
        };
        let ft = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
        // O_PATH|O_NOFOLLOW opens a symlink itself instead of failing.
        if ft == rustix::fs::FileType::Symlink {
            bail!("{part} is a symlink");
        }
        if last {
            if !matches!(
                ft,
                rustix::fs::FileType::Directory | rustix::fs::FileType::RegularFile
            ) {
                bail!("not a directory or a regular file");
            }
            target = Some(fd);
        } else {
            if ft != rustix::fs::FileType::Directory {
                bail!("{part} is not a directory");
            }
            dir = Some(fd);
        }
    }
    let target = target.expect("at least one component");
    let is_dir = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&target)?.st_mode)
        == rustix::fs::FileType::Directory;

    // The mount point: replace whatever an earlier run left.
    detach_all_if_exists(&sp.pin)?;
    match fs::symlink_metadata(&sp.pin) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => {}
        Ok(m) if m.is_dir() => fs::remove_dir(&sp.pin)?,
        Ok(_) => fs::remove_file(&sp.pin)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    if !sp.pin.exists() {
        if is_dir {
            fs::DirBuilder::new().mode(0o700).create(&sp.pin)?;
        } else {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&sp.pin)?;
        }
    }
    let src = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
    mount(
        Some(src.as_str()),
        &sp.pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind-mounting it on {}", sp.pin.display()))?;
    Ok(())
}

fn detach_all_if_exists(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => detach_all(p),
    }
}

/// A root-only directory (created if missing, never a symlink).
fn private_dir(dir: &Path) -> Result<()> {
    crate::perms::private_dir(dir).with_context(|| format!("making {} private", dir.display()))
}

/// Whether `path` is the root of a mount (statx `STATX_ATTR_MOUNT_ROOT`).
fn is_mount_root(path: &Path) -> Result<bool> {
    let st = rustix::fs::statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::empty(),
    )
    .with_context(|| format!("statx {}", path.display()))?;
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    // Kernels before 5.8: a different device than the parent.
    let parent = path.parent().unwrap_or(Path::new("/"));
    Ok(fs::symlink_metadata(path)?.dev() != fs::metadata(parent)?.dev())
}

fn is_tmpfs(path: &Path) -> Result<bool> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let st = rustix::fs::statfs(path)?;
    Ok(st.f_type as i64 == TMPFS_MAGIC)
}

fn mount_tmpfs(at: &Path, options: &str, flags: MsFlags) -> Result<()> {
    mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | flags,
        Some(options),
    )
    .with_context(|| format!("mounting a tmpfs ({options}) on {}", at.display()))
}

/// Detach every mount stacked on `at` (bounded: a loop here would be a bug).
fn detach_all(at: &Path) -> Result<()> {
    for _ in 0..64 {
        if !is_mount_root(at)? {
            return Ok(());
        }
        umount2(at, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", at.display()))?;
    }
    bail!("{}: too many stacked mounts", at.display())
}

/// emptyDir `medium: Memory`: a tmpfs, mode 0777, `size=` from sizeLimit.
/// One mounted by an earlier run is kept (its data survives a restart of
/// the infra unit that did not tear it down) and resized.
fn memory_empty_dir(v: &Volume) -> Result<()> {
    if is_mount_root(&v.location)? && is_tmpfs(&v.location)? {
        if let Some(b) = v.size_limit {
            let opts = format!("size={}k", b.div_ceil(1024).max(1));
            mount_tmpfs(&v.location, &opts, MsFlags::MS_REMOUNT)?;
        }
        return Ok(());
    }
    detach_all(&v.location)?;
    mount_tmpfs(
        &v.location,
        &tmpfs_options(EMPTY_DIR_MODE, v.size_limit),
        MsFlags::empty(),
    )
}

/// configMap/secret: a fresh tmpfs with the files, then read-only (as
/// Kubernetes mounts these volumes, whatever the volumeMount says).
fn data_volume(v: &Volume, data: &OwnedFd) -> Result<()> {
    // Replace anything an earlier run left: the content may have changed.
    detach_all(&v.location)?;
    mount_tmpfs(
        &v.location,
        &tmpfs_options(DATA_DIR_MODE, None),
        MsFlags::empty(),
    )?;
    let root = open_dir(CWD, &v.location, ResolveFlags::NO_SYMLINKS)?;
    for f in &v.files {
        copy_file(data, &root, f).with_context(|| format!("file {}", f.path))?;
    }
    mount_tmpfs(
        &v.location,
        &tmpfs_options(DATA_DIR_MODE, None),
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
    )
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn open_dir(dir: impl AsFd, path: &Path, resolve: ResolveFlags) -> Result<OwnedFd> {
    rustix::fs::openat2(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )
    .with_context(|| format!("opening directory {}", path.display()))
}

/// Copy `data/<source>` to `<volume>/<path>` with `mode`, creating the
/// directories of `path`. Nothing is resolved outside `data`/the volume and
/// no symlink is followed.
fn copy_file(data: &OwnedFd, root: &OwnedFd, f: &VolumeFile) -> Result<()> {
    relative_components(&f.source)?;
    let src = rustix::fs::openat2(
        data,
        f.source.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
    .with_context(|| format!("opening source {}", f.source))?;
    let st = rustix::fs::fstat(&src)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        bail!("source {} is not a regular file", f.source);
    }

    let parts = relative_components(&f.path)?;
    let (name, dirs) = parts.split_last().expect("at least one component");
    let mut dir: Option<OwnedFd> = None;
    for d in dirs {
        let at = dir.as_ref().unwrap_or(root);
        match rustix::fs::mkdirat(at, *d, Mode::from_raw_mode(DATA_DIR_MODE)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("mkdir {d}")),
        }
        let next = open_dir(at, Path::new(d), BENEATH)?;
        rustix::fs::fchmod(&next, Mode::from_raw_mode(DATA_DIR_MODE))?;
        dir = Some(next);
    }
    let at = dir.as_ref().unwrap_or(root);
    let dst = rustix::fs::openat2(
        at,
        *name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
        BENEATH,
    )
    .with_context(|| format!("creating {name}"))?;
    let mut src = fs::File::from(src);
    let mut dst = fs::File::from(dst);
    io::copy(&mut src, &mut dst)?;
    // After the data, and explicitly: the umask must not change the mode.
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(f.mode & 0o777))?;
    Ok(())
}

/// Bytes an emptyDir on disk uses (allocated blocks, not following
/// symlinks, not crossing into other filesystems).
pub fn disk_usage(dir: &Path) -> io::Result<u64> {
    let top = fs::symlink_metadata(dir)?;
    let mut total = top.blocks() * 512;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != top.dev() {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(total)
}

/// sizeLimit on disk is reported, not enforced: say how much the emptyDir
/// uses, and warn when it is over its limit (Kubernetes would evict the pod).
fn report_usage(v: &Volume) {
    let Some(limit) = v.size_limit else { return };
    match disk_usage(&v.location) {
        Ok(used) if used > limit => note(&format!(
            "warning: emptyDir {:?} uses {} ({used} bytes), over its sizeLimit of {} \
             ({limit} bytes); podc does not enforce sizeLimit on disk (Kubernetes \
             would evict the pod)",
            v.name,
            human_bytes(used),
            human_bytes(limit)
        )),
        Ok(used) => note(&format!(
            "emptyDir {:?} uses {} of its sizeLimit {}",
            v.name,
            human_bytes(used),
            human_bytes(limit)
        )),
        Err(e) => note(&format!("emptyDir {:?}: measuring usage: {e}", v.name)),
    }
}

/// `podc volumes teardown`: unmount every mount under the run dir and
/// remove it. emptyDirs on disk stay (they go with the state dir). Works
/// without (or with a changed) `volumes.json`.
pub fn teardown(state_dir: &Path, run_dir: &Path) -> Result<()> {
    check_absolute("--state-dir", state_dir)?;
    check_absolute("--run-dir", run_dir)?;
    if let Ok(Some(spec)) = read_spec(state_dir) {
        for v in spec
            .volumes
            .iter()
            .filter(|v| v.kind == Kind::EmptyDir && !v.tmpfs)
        {
            if v.location.starts_with(state_dir) && v.location.is_dir() {
                report_usage(v);
            }
        }
    }
    unmount_and_remove(run_dir)
}

fn unmount_and_remove(run_dir: &Path) -> Result<()> {
    let info = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    for m in mounts_under(&info, run_dir) {
        match umount2(&m, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(anyhow!("unmounting {}: {e}", m.display())),
        }
    }
    match fs::symlink_metadata(run_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(m) if !m.is_dir() => bail!("{} is not a directory", run_dir.display()),
        Ok(_) => {}
    }
    let info = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    if let Some(m) = mounts_under(&info, run_dir).first() {
        bail!("{} is still mounted", m.display());
    }
    crate::perms::remove_tree(run_dir).with_context(|| format!("removing {}", run_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_never_leave() {
        assert_eq!(relative_components("a/b.txt").unwrap(), ["a", "b.txt"]);
        assert_eq!(relative_components("..data").unwrap(), ["..data"]);
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            "a\0b",
        ] {
            assert!(relative_components(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tmpfs_size_in_kib() {
        assert_eq!(
            tmpfs_options(0o777, Some(10 * 1024 * 1024)),
            "mode=0777,size=10240k"
        );
        assert_eq!(tmpfs_options(0o755, None), "mode=0755");
        // Rounded up, never zero (size=0 would mean unlimited).
        assert_eq!(tmpfs_options(0o777, Some(1500)), "mode=0777,size=2k");
        assert_eq!(tmpfs_options(0o777, Some(0)), "mode=0777,size=1k");
    }

    #[test]
    fn host_path_types_as_kubelet() {
        use HostPathAction as A;
        use HostPathType as T;
        let p = Path::new("/srv/x");
        let ok = |t: T, f: Found| t.check(p, f);
        assert_eq!(ok(T::Unset, Found::Missing), Ok(A::Nothing));
        assert_eq!(
            ok(T::DirectoryOrCreate, Found::Missing),
            Ok(A::CreateDirectory)
        );
        assert_eq!(ok(T::DirectoryOrCreate, Found::Directory), Ok(A::Nothing));
        assert_eq!(
            ok(T::DirectoryOrCreate, Found::File).unwrap_err(),
            "hostPath type check failed: /srv/x is not a directory"
        );
        assert_eq!(
            ok(T::Directory, Found::Missing).unwrap_err(),
            "hostPath type check failed: /srv/x is not a directory (it does not exist)"
        );
        assert_eq!(ok(T::FileOrCreate, Found::Missing), Ok(A::CreateFile));
        assert_eq!(ok(T::FileOrCreate, Found::File), Ok(A::Nothing));
        assert!(ok(T::FileOrCreate, Found::Directory).is_err());
        assert_eq!(ok(T::File, Found::File), Ok(A::Nothing));
        assert!(ok(T::File, Found::Missing).is_err());
        assert_eq!(
            ok(T::Socket, Found::File).unwrap_err(),
            "hostPath type check failed: /srv/x is not a socket file"
        );
        assert_eq!(ok(T::Socket, Found::Socket), Ok(A::Nothing));
        assert_eq!(ok(T::CharDevice, Found::CharDevice), Ok(A::Nothing));
        assert!(ok(T::CharDevice, Found::BlockDevice)
            .unwrap_err()
            .ends_with("is not a character device"));
        assert_eq!(ok(T::BlockDevice, Found::BlockDevice), Ok(A::Nothing));
        assert!(ok(T::BlockDevice, Found::Other)
            .unwrap_err()
            .ends_with("is not a block device"));
        assert!(T::parse("directory").is_err());
        assert_eq!(T::parse("").unwrap(), T::Unset);
    }

    #[test]
    fn host_path_type_of_real_files() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Found::of(d.path()).unwrap(), Found::Directory);
        assert_eq!(Found::of(&d.path().join("nope")).unwrap(), Found::Missing);
        let f = d.path().join("f");
        fs::write(&f, b"").unwrap();
        assert_eq!(Found::of(&f).unwrap(), Found::File);
        // Symlinks are followed, as kubelet's os.Stat does.
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert_eq!(Found::of(&l).unwrap(), Found::File);
        let s = d.path().join("s");
        let _sock = std::os::unix::net::UnixListener::bind(&s).unwrap();
        assert_eq!(Found::of(&s).unwrap(), Found::Socket);
        assert_eq!(
            Found::of(Path::new("/dev/null")).unwrap(),
            Found::CharDevice
        );
    }

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn spec_locations_are_where_podc_puts_them() {
        let s = spec(
            r#"{"volumes":[
            {"name":"cache","location":"/s/volumes/cache","kind":"emptyDir","tmpfs":false,"sizeLimit":1024},
            {"name":"mem","location":"/r/mem","kind":"emptyDir","tmpfs":true,"sizeLimit":10485760},
            {"name":"host","location":"/srv/x","kind":"hostPath","tmpfs":false,"hostPathType":"Directory"},
            {"name":"cfg","location":"/r/cfg","kind":"configMap","tmpfs":true,
             "files":[{"source":"volumes/cfg/a","path":"sub/a","mode":420}]}
            ]}"#,
        );
        assert!(check_spec(&s, Path::new("/s"), Path::new("/r")).is_empty());
        let errs = check_spec(&s, Path::new("/s"), Path::new("/other"));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("volume \"mem\": location /r/mem is not /other/mem"));
    }

    #[test]
    fn spec_escapes_are_refused_all_at_once() {
        let s = spec(
            r#"{"volumes":[
            {"name":"../x","location":"/r/x","kind":"emptyDir","tmpfs":true},
            {"name":"h","location":"/srv/../etc","kind":"hostPath","tmpfs":false,"hostPathType":"Bogus"},
            {"name":"c","location":"/r/c","kind":"secret","tmpfs":true,
             "files":[{"source":"../../etc/shadow","path":"a","mode":256},
                      {"source":"volumes/c/b","path":"/etc/b","mode":4095},
                      {"source":"volumes/c/b","path":"a","mode":256}]}
            ]}"#,
        );
        let errs = check_spec(&s, Path::new("/s"), Path::new("/r"));
        let all = errs.join("\n");
        for want in [
            "name \"../x\" is not a single path component",
            "hostPath /srv/../etc must be absolute and normalized",
            "Bogus is an invalid volume type",
            "source \"../../etc/shadow\": must not contain \"..\"",
            "path \"/etc/b\": must be relative",
            "mode 7777 is above 0777",
            "a: listed twice",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn sub_path_pins_stay_in_the_run_dir() {
        let s = spec(
            r#"{"volumes":[
            {"name":"c","location":"/s/volumes/c","kind":"emptyDir","tmpfs":false,
             "subPaths":[{"path":"a/b","pin":"/r/.subpath/0"},
                         {"path":"../x","pin":"/r/.subpath/1"},
                         {"path":"a","pin":"/r/.subpath/../../etc"},
                         {"path":"a","pin":"/elsewhere/2"},
                         {"path":"a","pin":"/r/.subpath/0"}]}
            ]}"#,
        );
        let errs = check_spec(&s, Path::new("/s"), Path::new("/r")).join("\n");
        for want in [
            "subPath \"../x\": must not contain \"..\"",
            "subPath pin /r/.subpath/../../etc is not directly under /r/.subpath",
            "subPath pin /elsewhere/2 is not directly under /r/.subpath",
            "subPath pin /r/.subpath/0 used twice",
        ] {
            assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
        }
        assert_eq!(errs.lines().count(), 4, "{errs}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(serde_json::from_str::<Spec>(
            r#"{"volumes":[{"name":"a","location":"/r/a","kind":"emptyDir","tmpfs":true,"medium":"x"}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Spec>(
            r#"{"volumes":[{"name":"a","location":"/r/a","kind":"nfs"}]}"#
        )
        .is_err());
    }

    #[test]
    fn mountinfo_children_and_stacks_first() {
        let info = "\
22 1 0:21 / /run rw - tmpfs tmpfs rw
30 22 0:40 / /run/podc/volumes/p/cfg rw - tmpfs tmpfs rw
31 22 0:41 / /run/podc/volumes/p/cfg rw - tmpfs tmpfs rw
32 22 0:42 / /run/podc/volumes/p/a\\040b rw - tmpfs tmpfs rw
33 22 0:43 / /run/podc/volumes/p/cfg/x rw - tmpfs tmpfs rw
34 22 0:44 / /run/podc/volumes/pp/cfg rw - tmpfs tmpfs rw
";
        let m = mounts_under(info, Path::new("/run/podc/volumes/p"));
        let m: Vec<_> = m.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            m,
            [
                "/run/podc/volumes/p/cfg/x",
                "/run/podc/volumes/p/a b",
                "/run/podc/volumes/p/cfg",
                "/run/podc/volumes/p/cfg",
            ]
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
    }

    #[test]
    fn disk_usage_counts_blocks_without_following_symlinks() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/f"), vec![1u8; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/usr", d.path().join("l")).unwrap();
        let used = disk_usage(d.path()).unwrap();
        assert!((64 * 1024..16 * 1024 * 1024).contains(&used), "{used}");
    }
}
