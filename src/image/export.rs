//! `podc image export`: the flattened root filesystem of an image as a tar
//! stream, computed from the layer directories without mounting them
//! (overlayfs semantics: whiteouts hide, opaque directories hide what is
//! below them, a higher non-directory hides a lower subtree).

use super::store::Image;
use super::unpack::{is_opaque, is_whiteout};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

struct Node {
    src: PathBuf,
    meta: fs::Metadata,
    /// opaque directory: lower layers contribute nothing below it
    opaque: bool,
    /// layer index (0 = top)
    layer: usize,
}

fn walk(
    layer: usize,
    dir: &Path,
    rel: &Path,
    nodes: &mut BTreeMap<PathBuf, Node>,
    hidden: &mut std::collections::HashSet<PathBuf>,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let src = e.path();
        let meta = fs::symlink_metadata(&src)?;
        if hidden.contains(&r) {
            continue;
        }
        if let Some(n) = nodes.get(&r) {
            // a higher layer has this path: only a directory over a directory
            // lets this layer's children through
            if n.meta.is_dir() && meta.is_dir() && !n.opaque {
                walk(layer, &src, &r, nodes, hidden)?;
            }
            continue;
        }
        if is_whiteout(&meta) {
            hidden.insert(r);
            continue;
        }
        let is_dir = meta.is_dir();
        let opaque = is_dir && is_opaque(&src);
        nodes.insert(
            r.clone(),
            Node {
                src: src.clone(),
                meta,
                opaque,
                layer,
            },
        );
        if is_dir {
            walk(layer, &src, &r, nodes, hidden)?;
        }
    }
    Ok(())
}

fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names) else {
        return vec![];
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut v = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(p, name, &mut v) {
            out.push((name.to_string(), v[..len].to_vec()));
        }
    }
    out
}

/// Writes the image's flattened root filesystem as a tar stream.
pub fn export_image<W: Write>(image: &Image, out: W) -> Result<()> {
    let mut nodes = BTreeMap::new();
    let mut hidden = std::collections::HashSet::new();
    for (i, dir) in image.lower_dirs().iter().enumerate() {
        walk(i, dir, Path::new(""), &mut nodes, &mut hidden)?;
    }
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let root_meta = fs::metadata(image.lower_dirs().first().context("image has no layers")?)?;
    let mut h = tar::Header::new_gnu();
    fill_header(&mut h, &root_meta, tar::EntryType::Directory);
    b.append_data(&mut h, "./", std::io::empty())?;
    let mut links: HashMap<(usize, u64), PathBuf> = HashMap::new();
    for (rel, n) in &nodes {
        let m = &n.meta;
        let ft = m.file_type();
        let mut h = tar::Header::new_gnu();
        let x: Vec<(String, Vec<u8>)> = xattrs(&n.src)
            .into_iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
            .collect();
        if !x.is_empty() {
            b.append_pax_extensions(x.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        if ft.is_dir() {
            fill_header(&mut h, m, tar::EntryType::Directory);
            b.append_data(&mut h, rel, std::io::empty())?;
        } else if ft.is_symlink() {
            fill_header(&mut h, m, tar::EntryType::Symlink);
            let target = fs::read_link(&n.src)?;
            b.append_link(&mut h, rel, target)?;
        } else if ft.is_file() {
            let key = (n.layer, m.ino());
            if m.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    fill_header(&mut h, m, tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, rel, first)?;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            fill_header(&mut h, m, tar::EntryType::Regular);
            h.set_size(m.len());
            let f = File::open(&n.src).with_context(|| format!("reading {}", n.src.display()))?;
            b.append_data(&mut h, rel, f)?;
        } else {
            let t = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue; // sockets are not archived
            };
            fill_header(&mut h, m, t);
            let rdev = m.rdev();
            h.set_device_major(rustix::fs::major(rdev))?;
            h.set_device_minor(rustix::fs::minor(rdev))?;
            b.append_data(&mut h, rel, std::io::empty())?;
        }
    }
    b.into_inner()?.flush()?;
    Ok(())
}

fn fill_header(h: &mut tar::Header, m: &fs::Metadata, t: tar::EntryType) {
    h.set_entry_type(t);
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(m.uid() as u64);
    h.set_gid(m.gid() as u64);
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(0);
}

/// Exports to a file atomically (temporary file, then rename), or to stdout
/// for `-`.
pub fn export_to(image: &Image, dest: &Path) -> Result<()> {
    if dest.as_os_str() == "-" {
        let stdout = std::io::stdout();
        return export_image(image, std::io::BufWriter::new(stdout.lock()));
    }
    let mut tmp = OsString::from_vec(dest.as_os_str().as_bytes().to_vec());
    tmp.push(format!(".podc-tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let r = (|| -> Result<()> {
        let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        export_image(image, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, dest).with_context(|| format!("writing {}", dest.display()))?;
        Ok(())
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}
