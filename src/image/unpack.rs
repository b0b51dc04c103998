//! Streaming, safe unpacking of one layer tarball into its own directory.
//!
//! The directory is an overlayfs *lower* layer, so OCI whiteouts are stored
//! the way overlayfs reads them:
//! - `dir/.wh.NAME` becomes a character device 0:0 named `dir/NAME`;
//! - `dir/.wh..wh..opq` sets the `trusted.overlay.opaque=y` xattr on `dir`.
//!
//! Safety: every entry path is checked before anything is written. Paths with
//! `..` components or a leading `/` are rejected, and so is any entry (or hard
//! link target) whose parent path passes through a symlink of the layer.
//! Every file-system call is relative to a directory descriptor opened one
//! component at a time with `O_NOFOLLOW|O_DIRECTORY`, and metadata goes
//! through the entry's own descriptor (or an `AT_SYMLINK_NOFOLLOW` call):
//! nothing is ever reached by following a symlink, so nothing can land or
//! change outside the layer directory. Directory metadata, applied at the
//! end, lands only on the very directory created for the entry (same device
//! and inode, found by one walk of the layer that never follows a symlink):
//! a name that later became a symlink or a file is skipped. A rejected layer fails
//! the whole import.
//!
//! The tar stream is read entry by entry; file contents are copied with a
//! fixed buffer, so memory does not grow with the layer size.

use super::limits::{drain_entry, header_budgeted, Limits};
use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::{
    self, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What one layer may consume: the store's [`Limits`] and what is left of
/// the image's unpacked-size budget (the layers before it used the rest).
pub struct LayerCaps<'a> {
    pub limits: &'a Limits,
    pub image_left: u64,
}

impl LayerCaps<'_> {
    /// Fails when a layer whose files add up to `size` bytes is over a cap.
    /// Counts bytes actually written, whatever the tar headers claim.
    fn check_size(&self, size: u64) -> Result<()> {
        let l = self.limits;
        if size > l.max_layer_size {
            let what = format!("the layer unpacks to more than {} bytes", l.max_layer_size);
            return Err(l.exceeded("maxLayerSize", what).into());
        }
        if size > self.image_left {
            let what = format!("the image unpacks to more than {} bytes", l.max_image_size);
            return Err(l.exceeded("maxImageSize", what).into());
        }
        Ok(())
    }

    fn check_entries(&self, entries: u64) -> Result<()> {
        let l = self.limits;
        if entries > l.max_layer_entries {
            let what = format!("the layer has more than {} entries", l.max_layer_entries);
            return Err(l.exceeded("maxLayerEntries", what).into());
        }
        Ok(())
    }
}

/// What unpacking one layer produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    /// Sum of the sizes of the regular files written.
    pub size: u64,
    /// Number of tar entries processed, plus the directories their paths
    /// implied (created without an entry of their own).
    pub entries: u64,
}

/// A reader that hashes (sha256) and counts what passes through it and can
/// copy it to a writer (a blob file) on the way.
pub struct HashingReader<R, W> {
    inner: R,
    hasher: Sha256,
    count: u64,
    out: Option<W>,
}

impl<R: Read, W: Write> HashingReader<R, W> {
    pub fn new(inner: R, out: Option<W>) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            out,
        }
    }
    /// Reads everything left so it is hashed (and copied) too.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }
    pub fn finish(self) -> (super::Digest, u64, Option<W>) {
        (
            super::Digest::from_sha256(&self.hasher.finalize()),
            self.count,
            self.out,
        )
    }
}

impl<R: Read, W: Write> Read for HashingReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(out) = &mut self.out {
            out.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// The compression of a layer (or archive) stream, sniffed from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
    /// The OCI media type of a layer with this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Wraps `r` in the decompressor its first bytes call for (gzip, zstd, none).
pub fn decompress<'a, R: BufRead + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf().context("reading stream")?;
    Ok(match Compression::sniff(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(r).context("starting zstd decoder")?)
        }
        Compression::None => Box::new(r),
    })
}

/// Turns a tar entry path into checked relative components.
/// `Ok(None)` is the layer root itself (`./`).
pub fn safe_rel_path(raw: &[u8]) -> Result<Option<PathBuf>> {
    let shown = String::from_utf8_lossy(raw);
    if raw.first() == Some(&b'/') {
        bail!("entry {shown:?} has an absolute path: rejected");
    }
    let mut out = PathBuf::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => bail!("entry {shown:?} has a '..' component: rejected"),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    // "/" + the path + NUL must fit PATH_MAX: a longer one names nothing
    // a process can open, and its depth is work for every walk of the tree.
    let len = out.as_os_str().len();
    if len + 2 > PATH_MAX {
        bail!(
            "entry {} is {len} bytes long, more than a path can be (PATH_MAX {PATH_MAX}): rejected",
            crate::untrusted::shown(&shown)
        );
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Linux's longest path, including its NUL.
const PATH_MAX: usize = 4096;

fn rustix_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Flags to open a directory of the layer: never through a symlink.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Identity of a directory the unpacker created: (device, inode).
type DirId = (u64, u64);

fn dir_id(fd: BorrowedFd<'_>) -> Result<DirId> {
    let st = fs::fstat(fd).map_err(rustix_err)?;
    Ok((st.st_dev, st.st_ino))
}

/// Explains why `name` in `dir` could not be opened as a directory: a
/// symlink (with its target) or another non-directory.
fn not_a_dir(dir: BorrowedFd<'_>, name: &OsStr, sofar: &Path, shown: &str) -> anyhow::Error {
    match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            let target = fs::readlinkat(dir, name, Vec::new())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            anyhow!("entry {shown:?} would be written through the symlink {sofar:?} (-> {target:?}): rejected")
        }
        _ => anyhow!("entry {shown:?}: parent {sofar:?} is not a directory"),
    }
}

/// Opens the parent directory of `rel` below `root`, one component at a
/// time with `O_NOFOLLOW|O_DIRECTORY`, so no symlink is ever followed. Missing
/// directories are created when `created` is given (and recorded there),
/// else they mean the path is not in the layer.
fn open_parent(
    root: BorrowedFd<'_>,
    rel: &Path,
    shown: &str,
    mut created: Option<&mut Vec<DirId>>,
) -> Result<OwnedFd> {
    let mut cur = fs::openat(root, ".", dir_flags(), Mode::empty()).map_err(rustix_err)?;
    let mut sofar = PathBuf::new();
    for c in rel.parent().unwrap_or(Path::new("")).components() {
        let name = c.as_os_str();
        sofar.push(name);
        let next = match fs::openat(&cur, name, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let Some(list) = created.as_deref_mut() else {
                    bail!("entry {shown:?}: {sofar:?} is not in the layer");
                };
                fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755))
                    .map_err(rustix_err)
                    .with_context(|| format!("creating {sofar:?}"))?;
                let fd = fs::openat(&cur, name, dir_flags(), Mode::empty()).map_err(rustix_err)?;
                list.push(dir_id(fd.as_fd())?);
                fd
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(not_a_dir(cur.as_fd(), name, &sofar, shown))
            }
            Err(e) => {
                return Err(rustix_err(e)).with_context(|| format!("opening {sofar:?}"));
            }
        };
        cur = next;
    }
    Ok(cur)
}

/// The last component of `rel` (an entry name inside its parent).
fn base_name(rel: &Path) -> &OsStr {
    rel.file_name().unwrap_or(OsStr::new("."))
}

/// Removes the directory `name` in `dir` and everything below it, never
/// following a symlink (each level is opened with `O_NOFOLLOW`).
fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let fd = fs::openat(dir, name, dir_flags(), Mode::empty()).map_err(rustix_err)?;
    let mut names = Vec::new();
    for e in fs::Dir::read_from(&fd).map_err(rustix_err)? {
        let e = e.map_err(rustix_err)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        let st = fs::statat(&fd, &n, AtFlags::SYMLINK_NOFOLLOW).map_err(rustix_err)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            remove_tree_at(fd.as_fd(), &n)?;
        } else {
            fs::unlinkat(&fd, &n, AtFlags::empty()).map_err(rustix_err)?;
        }
    }
    fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(rustix_err)
}

/// Removes whatever is at `name` in `dir` (never following a symlink).
/// Keeps a directory when `keep_dir` and returns its identity then.
fn clear(dir: BorrowedFd<'_>, name: &OsStr, keep_dir: bool) -> Result<Option<DirId>> {
    let shown = || Path::new(name).display().to_string();
    match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            if keep_dir {
                return Ok(Some((st.st_dev, st.st_ino)));
            }
            remove_tree_at(dir, name).with_context(|| format!("replacing {}", shown()))?;
        }
        Ok(_) => fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(rustix_err)
            .with_context(|| format!("replacing {}", shown()))?,
        Err(Errno::NOENT) => {}
        Err(e) => return Err(rustix_err(e)).with_context(|| format!("inspecting {}", shown())),
    }
    Ok(None)
}

#[derive(Clone)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn timestamps(m: &Meta) -> Timestamps {
    let t = Timespec {
        tv_sec: m.mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Applies owner, xattrs, mode and times to an open regular file or
/// directory: through its descriptor, so nothing else can be reached.
fn apply_meta_fd(fd: BorrowedFd<'_>, m: &Meta, is_root: bool, shown: &str) -> Result<()> {
    if is_root {
        fs::fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)))
            .map_err(rustix_err)
            .with_context(|| format!("chown {shown}"))?;
    }
    // after chown, which drops security.capability
    for (k, v) in &m.xattrs {
        fs::fsetxattr(fd, OsStr::from_bytes(k), v, XattrFlags::empty())
            .map_err(rustix_err)
            .with_context(|| format!("setting xattr {} on {shown}", String::from_utf8_lossy(k)))?;
    }
    // after chown, which clears setuid/setgid bits
    fs::fchmod(fd, Mode::from_raw_mode(m.mode))
        .map_err(rustix_err)
        .with_context(|| format!("chmod {shown}"))?;
    fs::futimens(fd, &timestamps(m))
        .map_err(rustix_err)
        .with_context(|| format!("setting times on {shown}"))
}

/// `/proc/self/fd/N[/name]`: a path that reaches `fd` (or `name` in the
/// directory `fd`) without resolving any path of the layer, for the calls
/// that have no descriptor form for symlinks and device nodes.
fn fd_path(fd: BorrowedFd<'_>, name: Option<&OsStr>) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if let Some(n) = name {
        p.push(n);
    }
    p
}

/// Applies metadata to the symlink, device node or fifo `name` in `dir`
/// that was just created: `*at` calls that do not follow a symlink.
fn apply_meta_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    m: &Meta,
    is_root: bool,
    symlink: bool,
) -> Result<()> {
    let shown = Path::new(name).display().to_string();
    if is_root {
        fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(m.uid)),
            Some(Gid::from_raw(m.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(rustix_err)
        .with_context(|| format!("chown {shown}"))?;
    }
    for (k, v) in &m.xattrs {
        match fs::lsetxattr(
            fd_path(dir, Some(name)),
            OsStr::from_bytes(k),
            v,
            XattrFlags::empty(),
        ) {
            Ok(()) => {}
            // Linux keeps no user.* xattrs on symlinks: nothing to preserve
            Err(Errno::PERM) if symlink && k.starts_with(b"user.") => {}
            Err(e) => {
                return Err(rustix_err(e)).with_context(|| {
                    format!("setting xattr {} on {shown}", String::from_utf8_lossy(k))
                })
            }
        }
    }
    if !symlink {
        // chmod follows symlinks: go through an O_PATH descriptor of this
        // very node instead of its name
        let node = fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(rustix_err)?;
        fs::chmod(fd_path(node.as_fd(), None), Mode::from_raw_mode(m.mode))
            .map_err(rustix_err)
            .with_context(|| format!("chmod {shown}"))?;
    }
    fs::utimensat(dir, name, &timestamps(m), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(rustix_err)
        .with_context(|| format!("setting times on {shown}"))
}

fn mknod(dir: BorrowedFd<'_>, name: &OsStr, kind: FileType, mode: u32, dev: fs::Dev) -> Result<()> {
    fs::mknodat(dir, name, kind, Mode::from_raw_mode(mode), dev)
        .map_err(rustix_err)
        .with_context(|| {
            let p = Path::new(name).display();
            if rustix::process::geteuid().is_root() {
                format!("creating device node {p}")
            } else {
                format!("creating device node {p} needs root (CAP_MKNOD)")
            }
        })
}

/// The overlayfs xattr that marks a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Directories whose owner/mode/times wait for the end of the layer (so
/// read-only ones can still be filled and children don't bump mtimes), by
/// the identity of the directory created for them. At the end one walk of
/// the layer's directories (never through a symlink) applies them, children
/// before parents: metadata lands only on that very directory, never on
/// what a later entry put in its place (a symlink to a host file, a regular
/// file). Kept by identity, not by path, so the memory and the work grow
/// with the number of directories, not with their depth as well.
#[derive(Default)]
struct Deferred {
    /// directory identity → metadata; `None` for a parent the layer did not
    /// list, which gets mode 0755. A directory just created replaces what
    /// a removed one with the same (reused) inode left here.
    dirs: HashMap<DirId, Option<Meta>>,
}

impl Deferred {
    fn implicit(&mut self, created: &[DirId]) {
        for id in created {
            self.dirs.insert(*id, None);
        }
    }

    fn explicit(&mut self, id: DirId, meta: Meta) {
        self.dirs.insert(id, Some(meta));
    }

    /// Applies the metadata in one depth-first walk from `root` that holds
    /// one directory open at a time: it goes down by name and back up by
    /// `..` (checked to be the directory it came from).
    fn apply(mut self, root: BorrowedFd<'_>, is_root: bool) -> Result<()> {
        let mut cur = fs::openat(root, ".", dir_flags(), Mode::empty()).map_err(rustix_err)?;
        // per level walked: its identity, its name and the subdirectories
        // still to visit
        let mut stack = vec![(dir_id(cur.as_fd())?, PathBuf::new(), subdirs(cur.as_fd())?)];
        while !self.dirs.is_empty() {
            let Some((_, _, todo)) = stack.last_mut() else {
                break;
            };
            if let Some(name) = todo.pop() {
                match fs::openat(&cur, &name, dir_flags(), Mode::empty()) {
                    Ok(fd) => {
                        stack.push((
                            dir_id(fd.as_fd())?,
                            PathBuf::from(name),
                            subdirs(fd.as_fd())?,
                        ));
                        cur = fd;
                    }
                    Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => {}
                    Err(e) => return Err(rustix_err(e)).context("walking the layer"),
                }
                continue;
            }
            let Some((id, _, _)) = stack.pop() else {
                break;
            };
            let shown: PathBuf = stack.iter().map(|l| l.1.as_path()).collect();
            let parent = match stack.last() {
                Some((pid, _, _)) => {
                    let up = fs::openat(&cur, "..", dir_flags(), Mode::empty())
                        .map_err(rustix_err)
                        .context("walking the layer")?;
                    if dir_id(up.as_fd())? != *pid {
                        bail!("layer directory {shown:?} moved while it was unpacked");
                    }
                    Some(up)
                }
                None => None,
            };
            if let Some(meta) = self.dirs.remove(&id) {
                apply_dir_meta(cur.as_fd(), meta, is_root, &shown.display().to_string())?;
            }
            match parent {
                Some(up) => cur = up,
                None => break,
            }
        }
        Ok(())
    }
}

/// A deferred directory's metadata (its xattrs were set when it was made).
fn apply_dir_meta(
    fd: BorrowedFd<'_>,
    meta: Option<Meta>,
    is_root: bool,
    shown: &str,
) -> Result<()> {
    match meta {
        Some(m) => apply_meta_fd(fd, &m, is_root, shown),
        None => fs::fchmod(fd, Mode::from_raw_mode(0o755))
            .map_err(rustix_err)
            .with_context(|| format!("chmod {shown}")),
    }
}

/// The names of the subdirectories of the directory `fd` (symlinks are
/// not directories here).
fn subdirs(fd: BorrowedFd<'_>) -> Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for e in fs::Dir::read_from(fd).map_err(rustix_err)? {
        let e = e.map_err(rustix_err)?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        let name = OsStr::from_bytes(n);
        let is_dir = match e.file_type() {
            FileType::Directory => true,
            FileType::Unknown => fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            _ => false,
        };
        if is_dir {
            out.push(name.to_os_string());
        }
    }
    Ok(out)
}

/// Reads an entry's owner, mode, time and xattrs from its headers.
fn entry_meta<R: Read>(e: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
    let h = e.header();
    let mut meta = Meta {
        mode: h
            .mode()
            .with_context(|| format!("entry {shown:?}: bad mode"))?
            & 0o7777,
        uid: h
            .uid()
            .with_context(|| format!("entry {shown:?}: bad uid"))? as u32,
        gid: h
            .gid()
            .with_context(|| format!("entry {shown:?}: bad gid"))? as u32,
        mtime: h.mtime().unwrap_or(0) as i64,
        xattrs: Vec::new(),
    };
    let Some(exts) = e
        .pax_extensions()
        .with_context(|| format!("entry {shown:?}: bad pax header"))?
    else {
        return Ok(meta);
    };
    for ext in exts {
        let ext = ext.with_context(|| format!("entry {shown:?}: bad pax header"))?;
        if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
            if name.starts_with(b"trusted.overlay.") {
                bail!(
                    "entry {shown:?} carries the overlayfs-private xattr {}: rejected",
                    String::from_utf8_lossy(name)
                );
            }
            meta.xattrs
                .push((name.to_vec(), ext.value_bytes().to_vec()));
        }
    }
    Ok(meta)
}

/// The state of one layer being unpacked.
struct Unpacker<'a> {
    caps: &'a LayerCaps<'a>,
    root: OwnedFd,
    is_root: bool,
    stats: UnpackStats,
    deferred: Deferred,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    /// Opens the parent of `rel` (creating missing directories). Each
    /// directory created counts as an entry: the entries cap bounds the
    /// inodes a layer makes, and one path can imply a thousand directories.
    fn parent(&mut self, rel: &Path, shown: &str) -> Result<OwnedFd> {
        let mut created = Vec::new();
        let r = open_parent(self.root.as_fd(), rel, shown, Some(&mut created));
        self.stats.entries += created.len() as u64;
        self.deferred.implicit(&created);
        self.caps.check_entries(self.stats.entries)?;
        r
    }

    /// A directory entry's xattrs now (a directory's owner change keeps
    /// them), its owner, mode and times at the end ([`Deferred`]), so no
    /// entry's xattrs are held in memory for the rest of the layer.
    fn directory_meta(&mut self, fd: BorrowedFd<'_>, mut meta: Meta, shown: &str) -> Result<()> {
        for (k, v) in std::mem::take(&mut meta.xattrs) {
            fs::fsetxattr(fd, OsStr::from_bytes(&k), &v, XattrFlags::empty())
                .map_err(rustix_err)
                .with_context(|| {
                    format!("setting xattr {} on {shown}", String::from_utf8_lossy(&k))
                })?;
        }
        self.deferred.explicit(dir_id(fd)?, meta);
        Ok(())
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = safe_rel_path(&raw)?;
        let meta = entry_meta(e, &shown)?;
        let etype = e.header().entry_type();
        let Some(rel) = rel else {
            if etype.is_dir() {
                let root = self.root.try_clone()?;
                return self.directory_meta(root.as_fd(), meta, &shown);
            }
            bail!("entry {shown:?} names the layer root but is not a directory");
        };
        let dir = self.parent(&rel, &shown)?;
        let name = base_name(&rel);
        if let Some(wh) = name.as_bytes().strip_prefix(b".wh.") {
            return whiteout(dir.as_fd(), wh, &shown);
        }
        use tar::EntryType as T;
        match etype {
            T::Directory => {
                let fd = directory(dir.as_fd(), name, &shown)?;
                self.directory_meta(fd.as_fd(), meta, &shown)?;
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.regular(e, dir.as_fd(), name, &meta, &shown)?
            }
            T::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("symlink entry {shown:?} has no target"))?
                    .into_owned();
                clear(dir.as_fd(), name, false)?;
                fs::symlinkat(OsStr::from_bytes(&target), &dir, name)
                    .map_err(rustix_err)
                    .with_context(|| format!("creating symlink {shown:?}"))?;
                apply_meta_at(dir.as_fd(), name, &meta, self.is_root, true)?;
            }
            T::Link => self.hardlink(e, dir.as_fd(), &rel, &shown)?,
            T::Char | T::Block | T::Fifo => {
                let (kind, dev) = node_kind(e.header());
                clear(dir.as_fd(), name, false)?;
                mknod(dir.as_fd(), name, kind, meta.mode, dev)?;
                apply_meta_at(dir.as_fd(), name, &meta, self.is_root, false)?;
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            other => bail!(
                "entry {shown:?} has an unsupported tar entry type {:?}",
                other.as_byte() as char
            ),
        }
        Ok(())
    }

    /// Writes a regular file: created fresh (never opened through a symlink)
    /// and given its metadata through its own descriptor.
    fn regular<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        shown: &str,
    ) -> Result<()> {
        clear(dir, name, false)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))
            .map_err(rustix_err)
            .with_context(|| format!("creating {shown:?}"))?;
        let mut f = std::fs::File::from(fd);
        loop {
            let n = e
                .read(&mut self.buf)
                .with_context(|| format!("reading entry {shown:?}"))?;
            if n == 0 {
                break;
            }
            self.caps.check_size(self.stats.size + n as u64)?;
            f.write_all(&self.buf[..n])
                .with_context(|| format!("writing {shown:?}"))?;
            self.stats.size += n as u64;
        }
        apply_meta_fd(f.as_fd(), meta, self.is_root, shown)
    }

    /// Links `rel` to another entry of this layer; the target is looked up
    /// without following symlinks and must already be in the layer.
    fn hardlink<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        rel: &Path,
        shown: &str,
    ) -> Result<()> {
        let raw_t = e
            .link_name_bytes()
            .ok_or_else(|| anyhow!("hard link entry {shown:?} has no target"))?
            .into_owned();
        let shown_t = String::from_utf8_lossy(&raw_t).into_owned();
        let t_rel = safe_rel_path(&raw_t)
            .with_context(|| format!("hard link {shown:?} -> {shown_t:?}"))?
            .ok_or_else(|| anyhow!("hard link {shown:?} points at the layer root"))?;
        let not_in =
            || anyhow!("hard link {shown:?} points at {shown_t:?}, which is not in the layer");
        let t_dir = open_parent(self.root.as_fd(), &t_rel, &shown_t, None)
            .with_context(|| format!("hard link {shown:?} -> {shown_t:?}"))?;
        let t_name = base_name(&t_rel);
        match fs::statat(&t_dir, t_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                bail!("hard link {shown:?} points at the directory {shown_t:?}")
            }
            Ok(_) => {}
            Err(_) => return Err(not_in()),
        }
        if t_rel == rel {
            return Ok(());
        }
        let name = base_name(rel);
        clear(dir, name, false)?;
        // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its target
        fs::linkat(&t_dir, t_name, dir, name, AtFlags::empty())
            .map_err(rustix_err)
            .with_context(|| format!("linking {shown:?} to {shown_t:?}"))
    }
}

/// Makes `name` in `dir` a directory (keeping one that is there) and
/// opens it, never through a symlink.
fn directory(dir: BorrowedFd<'_>, name: &OsStr, shown: &str) -> Result<OwnedFd> {
    if clear(dir, name, true)?.is_none() {
        fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))
            .map_err(rustix_err)
            .with_context(|| format!("creating {shown:?}"))?;
    }
    fs::openat(dir, name, dir_flags(), Mode::empty())
        .map_err(rustix_err)
        .with_context(|| format!("opening {shown:?}"))
}

/// The file type and device number of a device or fifo entry.
fn node_kind(h: &tar::Header) -> (FileType, fs::Dev) {
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    match h.entry_type() {
        tar::EntryType::Char => (FileType::CharacterDevice, fs::makedev(major, minor)),
        tar::EntryType::Block => (FileType::BlockDevice, fs::makedev(major, minor)),
        _ => (FileType::Fifo, 0),
    }
}

/// A whiteout `.wh.NAME` (`wh` is `NAME`) in the directory `dir`.
fn whiteout(dir: BorrowedFd<'_>, wh: &[u8], shown: &str) -> Result<()> {
    if wh == b".wh..opq" {
        return fs::fsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map_err(rustix_err)
            .with_context(|| {
                format!("marking the directory of {shown:?} opaque (needs root: trusted.* xattrs)")
            });
    }
    if wh.starts_with(b".wh.") || wh.is_empty() {
        // other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content
        return Ok(());
    }
    let target = OsStr::from_bytes(wh);
    // a whiteout only hides lower layers: an entry of this same layer stays
    if fs::statat(dir, target, AtFlags::SYMLINK_NOFOLLOW).is_err() {
        mknod(dir, target, FileType::CharacterDevice, 0, fs::makedev(0, 0))
            .with_context(|| format!("whiteout {shown:?}"))?;
    }
    Ok(())
}

/// Unpacks the (already decompressed) tar stream `reader` into `dest`, an
/// existing empty directory. Fails on the first unsafe or unreadable entry;
/// the caller discards `dest` then. Fails as soon as the layer goes over one
/// of `caps`, having written no more than the cap allows.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path, caps: &LayerCaps) -> Result<UnpackStats> {
    let root = fs::open(dest, dir_flags(), Mode::empty())
        .map_err(rustix_err)
        .with_context(|| format!("opening {}", dest.display()))?;
    let mut u = Unpacker {
        caps,
        root,
        is_root: rustix::process::geteuid().is_root(),
        stats: UnpackStats::default(),
        deferred: Deferred::default(),
        buf: vec![0u8; 256 * 1024],
    };
    let (reader, budget) = header_budgeted(reader);
    let mut ar = tar::Archive::new(reader);
    let mut entries = ar.entries().context("reading layer tar")?;
    while let Some(entry) = budget.next(&mut entries) {
        let mut e = entry.context("reading layer tar entry")?;
        u.stats.entries += 1;
        caps.check_entries(u.stats.entries)?;
        u.entry(&mut e)?;
        drain_entry(&mut e).context("reading layer tar entry")?;
    }
    let Unpacker {
        root,
        is_root,
        stats,
        deferred,
        ..
    } = u;
    deferred.apply(root.as_fd(), is_root)?;
    Ok(stats)
}

/// Whether the directory entry at `p` is an overlayfs whiteout (char 0:0).
pub fn is_whiteout(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether `p` is a directory marked opaque for overlayfs.
pub fn is_opaque(p: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::lgetxattr(p, OPAQUE_XATTR, &mut v), Ok(1) if v[0] == b'y')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(
            safe_rel_path(b"./a/b/").unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(safe_rel_path(b"./").unwrap(), None);
        assert!(safe_rel_path(b"/etc/passwd")
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        assert!(safe_rel_path(b"a/../../x")
            .unwrap_err()
            .to_string()
            .contains("'..'"));
        assert!(safe_rel_path(b"..").is_err());
        let long = format!("./{}", "d/".repeat(2047));
        assert!(safe_rel_path(long.as_bytes()).unwrap().is_some());
        let e = safe_rel_path(format!("{long}x").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("is 4095 bytes long"), "{e}");
    }

    #[test]
    fn compression_sniffing() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
    }

    #[test]
    fn hashing_reader_hashes_and_copies() {
        let mut out = Vec::new();
        let mut r = HashingReader::new(&b"hello"[..], Some(&mut out));
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        let (d, n, _) = r.finish();
        assert_eq!(n, 5);
        assert_eq!(d, super::super::Digest::of_bytes(b"hello"));
        assert_eq!(out, b"hello");
    }
}
