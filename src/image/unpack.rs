//! Streaming, safe unpacking of one layer tarball into its own directory.
//!
//! The directory is an overlayfs *lower* layer, so OCI whiteouts are stored
//! the way overlayfs reads them:
//! - `dir/.wh.NAME` becomes a character device 0:0 named `dir/NAME`;
//! - `dir/.wh..wh..opq` sets the `trusted.overlay.opaque=y` xattr on `dir`.
//!
//! Safety: every entry path is checked before anything is written. Paths with
//! `..` components or a leading `/` are rejected, and so is any entry (or hard
//! link target) whose parent path passes through a symlink of the layer:
//! nothing is ever written by following a symlink, so nothing can land
//! outside the layer directory. A rejected layer fails the whole import.
//!
//! The tar stream is read entry by entry; file contents are copied with a
//! fixed buffer, so memory does not grow with the layer size.

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What unpacking one layer produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    /// Sum of the sizes of the regular files written.
    pub size: u64,
    /// Number of tar entries processed.
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
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

fn rustix_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Creates the missing parent directories of `rel` under `root`, refusing to
/// pass through a symlink or a non-directory.
fn ensure_parents(root: &Path, rel: &Path, shown: &str, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut cur = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&cur).unwrap_or_default();
                bail!(
                    "entry {shown:?} would be written through the symlink {:?} (-> {:?}): rejected",
                    cur.strip_prefix(root).unwrap_or(&cur),
                    target
                );
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "entry {shown:?}: parent {:?} is not a directory",
                cur.strip_prefix(root).unwrap_or(&cur)
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).with_context(|| format!("creating {}", cur.display()))?;
                created.push(cur.clone());
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", cur.display())),
        }
    }
    Ok(())
}

/// Removes whatever is at `p` (never following a symlink). Keeps directories
/// when `keep_dir`.
fn clear(p: &Path, keep_dir: bool) -> Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(p).with_context(|| format!("replacing {}", p.display()))?;
            Ok(false)
        }
        Ok(_) => {
            fs::remove_file(p).with_context(|| format!("replacing {}", p.display()))?;
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("inspecting {}", p.display())),
    }
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn apply_meta(p: &Path, m: &Meta, is_root: bool, symlink: bool) -> Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
    if is_root {
        rustix::fs::chownat(
            CWD,
            p,
            Some(rustix::fs::Uid::from_raw(m.uid)),
            Some(rustix::fs::Gid::from_raw(m.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(rustix_err)
        .with_context(|| format!("chown {}", p.display()))?;
    }
    // after chown, which drops security.capability
    for (k, v) in &m.xattrs {
        match rustix::fs::lsetxattr(p, OsStr::from_bytes(k), v, rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            // Linux keeps no user.* xattrs on symlinks: nothing to preserve
            Err(rustix::io::Errno::PERM) if symlink && k.starts_with(b"user.") => {}
            Err(e) => {
                return Err(rustix_err(e)).with_context(|| {
                    format!(
                        "setting xattr {} on {}",
                        String::from_utf8_lossy(k),
                        p.display()
                    )
                })
            }
        }
    }
    if !symlink {
        // after chown, which clears setuid/setgid bits
        rustix::fs::chmod(p, rustix::fs::Mode::from_raw_mode(m.mode))
            .map_err(rustix_err)
            .with_context(|| format!("chmod {}", p.display()))?;
    }
    let t = Timespec {
        tv_sec: m.mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(rustix_err)
    .with_context(|| format!("setting times on {}", p.display()))?;
    Ok(())
}

fn mknod(p: &Path, kind: rustix::fs::FileType, mode: u32, dev: rustix::fs::Dev) -> Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        kind,
        rustix::fs::Mode::from_raw_mode(mode),
        dev,
    )
    .map_err(rustix_err)
    .with_context(|| {
        if rustix::process::geteuid().is_root() {
            format!("creating device node {}", p.display())
        } else {
            format!(
                "creating device node {} needs root (CAP_MKNOD)",
                p.display()
            )
        }
    })
}

/// The overlayfs xattr that marks a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Unpacks the (already decompressed) tar stream `reader` into `dest`, an
/// existing empty directory. Fails on the first unsafe or unreadable entry;
/// the caller discards `dest` then.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats> {
    let is_root = rustix::process::geteuid().is_root();
    let mut ar = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    // directories get their final mode/owner/times last, deepest first, so
    // read-only directories can still be filled and children don't bump mtimes
    let mut dirs: Vec<(PathBuf, Meta)> = Vec::new();
    let mut implicit: Vec<PathBuf> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    for entry in ar.entries().context("reading layer tar")? {
        let mut e = entry.context("reading layer tar entry")?;
        stats.entries += 1;
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = safe_rel_path(&raw)?;
        let h = e.header().clone();
        let etype = h.entry_type();
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
        if let Some(exts) = e
            .pax_extensions()
            .with_context(|| format!("entry {shown:?}: bad pax header"))?
        {
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
        }
        let Some(rel) = rel else {
            if etype.is_dir() {
                dirs.push((dest.to_path_buf(), meta));
                continue;
            }
            bail!("entry {shown:?} names the layer root but is not a directory");
        };
        let base = rel
            .file_name()
            .map(|b| b.as_bytes().to_vec())
            .unwrap_or_default();
        if let Some(wh) = base.strip_prefix(b".wh.") {
            ensure_parents(dest, &rel, &shown, &mut implicit)?;
            let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
            if wh == b".wh..opq" {
                rustix::fs::lsetxattr(&parent, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
                    .map_err(rustix_err)
                    .with_context(|| {
                        format!(
                            "marking {} opaque (needs root: trusted.* xattrs)",
                            parent.display()
                        )
                    })?;
            } else if wh.starts_with(b".wh.") || wh.is_empty() {
                // other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content
            } else {
                let target = parent.join(OsStr::from_bytes(wh));
                // a whiteout only hides lower layers: an entry of this same
                // layer stays
                if fs::symlink_metadata(&target).is_err() {
                    mknod(
                        &target,
                        rustix::fs::FileType::CharacterDevice,
                        0,
                        rustix::fs::makedev(0, 0),
                    )
                    .with_context(|| format!("whiteout {shown:?}"))?;
                }
            }
            continue;
        }
        ensure_parents(dest, &rel, &shown, &mut implicit)?;
        let p = dest.join(&rel);
        use tar::EntryType as T;
        match etype {
            T::Directory => {
                if !clear(&p, true)? {
                    fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
                }
                dirs.push((p, meta));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                clear(&p, false)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc_o_nofollow())
                    .open(&p)
                    .with_context(|| format!("creating {}", p.display()))?;
                loop {
                    let n = e
                        .read(&mut buf)
                        .with_context(|| format!("reading entry {shown:?}"))?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n])
                        .with_context(|| format!("writing {}", p.display()))?;
                    stats.size += n as u64;
                }
                drop(f);
                apply_meta(&p, &meta, is_root, false)?;
            }
            T::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("symlink entry {shown:?} has no target"))?
                    .into_owned();
                clear(&p, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &p)
                    .with_context(|| format!("creating symlink {}", p.display()))?;
                apply_meta(&p, &meta, is_root, true)?;
            }
            T::Link => {
                let raw_t = e
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("hard link entry {shown:?} has no target"))?
                    .into_owned();
                let shown_t = String::from_utf8_lossy(&raw_t).into_owned();
                let t_rel = safe_rel_path(&raw_t)
                    .with_context(|| format!("hard link {shown:?} -> {shown_t:?}"))?
                    .ok_or_else(|| anyhow!("hard link {shown:?} points at the layer root"))?;
                let mut none = Vec::new();
                ensure_parents(dest, &t_rel, &shown_t, &mut none)
                    .with_context(|| format!("hard link {shown:?} -> {shown_t:?}"))?;
                if !none.is_empty() {
                    bail!("hard link {shown:?} points at {shown_t:?}, which is not in the layer");
                }
                let t = dest.join(&t_rel);
                match fs::symlink_metadata(&t) {
                    Ok(m) if m.is_dir() => {
                        bail!("hard link {shown:?} points at the directory {shown_t:?}")
                    }
                    Ok(_) => {}
                    Err(_) => bail!(
                        "hard link {shown:?} points at {shown_t:?}, which is not in the layer"
                    ),
                }
                if t == p {
                    continue;
                }
                clear(&p, false)?;
                fs::hard_link(&t, &p)
                    .with_context(|| format!("linking {} to {}", p.display(), t.display()))?;
            }
            T::Char | T::Block | T::Fifo => {
                clear(&p, false)?;
                let (kind, dev) = match etype {
                    T::Char | T::Block => {
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let k = if etype == T::Char {
                            rustix::fs::FileType::CharacterDevice
                        } else {
                            rustix::fs::FileType::BlockDevice
                        };
                        (k, rustix::fs::makedev(major, minor))
                    }
                    _ => (rustix::fs::FileType::Fifo, 0),
                };
                mknod(&p, kind, meta.mode, dev)?;
                apply_meta(&p, &meta, is_root, false)?;
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            other => bail!(
                "entry {shown:?} has an unsupported tar entry type {:?}",
                other.as_byte() as char
            ),
        }
    }
    for d in implicit {
        if !dirs.iter().any(|(p, _)| *p == d) {
            rustix::fs::chmod(&d, rustix::fs::Mode::from_raw_mode(0o755)).map_err(rustix_err)?;
        }
    }
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    for (p, m) in &dirs {
        apply_meta(p, m, is_root, false)?;
    }
    Ok(stats)
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Whether the directory entry at `p` is an overlayfs whiteout (char 0:0).
pub fn is_whiteout(m: &fs::Metadata) -> bool {
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
