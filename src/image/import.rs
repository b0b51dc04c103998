//! `podc image import`: OCI layout directories, OCI archives, `docker save`
//! archives and plain rootfs tarballs (gzip, zstd or uncompressed).
//!
//! Uncompressed archives are read in place: one pass over the tar headers
//! finds each member's offset, then each blob is streamed from its offset
//! straight into the store (hash, blob copy and unpack in one pass). A
//! compressed archive of a layout is first extracted into the store's
//! staging area.

use super::limits::{drain_entry, header_budgeted, Capped, HeaderBudget};
use super::reference::{Digest, Reference};
use super::store::{
    ConfigFile, Descriptor, Image, Index, Manifest, Platform, Store, WriteTxn, MAX_JSON,
    MT_DOCKER_LIST, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use super::unpack::{self, Compression};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the members of a layout or archive come from.
trait Source {
    fn open(&self, member: &str) -> Result<Box<dyn Read + '_>>;
    fn has(&self, member: &str) -> bool;
    fn read_small(&self, member: &str) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open(member)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut v)
            .with_context(|| format!("reading {member}"))?;
        if v.len() as u64 > MAX_JSON {
            bail!("{member} is larger than {MAX_JSON} bytes");
        }
        Ok(v)
    }
}

/// Normalises an archive member name; rejects anything that could leave the
/// archive (`..`, absolute paths).
fn member_name(name: &str) -> Result<String> {
    let p = unpack::safe_rel_path(name.as_bytes())
        .with_context(|| format!("archive member {name:?}"))?
        .ok_or_else(|| anyhow!("archive member {name:?} names the archive root"))?;
    Ok(p.to_string_lossy().into_owned())
}

struct DirSource {
    root: PathBuf,
}

impl Source for DirSource {
    fn open(&self, member: &str) -> Result<Box<dyn Read + '_>> {
        let m = member_name(member)?;
        // no symlink in the layout may lead out of it
        let mut cur = self.root.clone();
        for c in Path::new(&m).components() {
            cur.push(c);
            let md = fs::symlink_metadata(&cur)
                .with_context(|| format!("{member} is missing from the layout"))?;
            if md.file_type().is_symlink() {
                bail!("{member} is a symlink in the layout; refusing to follow it");
            }
        }
        Ok(Box::new(
            File::open(&cur).with_context(|| format!("opening {member}"))?,
        ))
    }
    fn has(&self, member: &str) -> bool {
        member_name(member)
            .map(|m| self.root.join(m).is_file())
            .unwrap_or(false)
    }
}

/// An uncompressed tar archive read in place.
struct TarSource {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

impl Source for TarSource {
    fn open(&self, member: &str) -> Result<Box<dyn Read + '_>> {
        let m = member_name(member)?;
        let &(off, size) = self
            .members
            .get(&m)
            .ok_or_else(|| anyhow!("{member} is missing from {}", self.path.display()))?;
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(off))?;
        Ok(Box::new(f.take(size)))
    }
    fn has(&self, member: &str) -> bool {
        member_name(member)
            .map(|m| self.members.contains_key(&m))
            .unwrap_or(false)
    }
}

#[derive(Debug, PartialEq)]
enum Kind {
    OciLayout,
    DockerArchive,
    Rootfs,
}

/// Whether a member name belongs to an image archive (OCI layout or docker
/// save) rather than to a root filesystem.
fn archive_vocabulary(name: &str) -> bool {
    let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["oci-layout" | "index.json" | "manifest.json" | "repositories" | "blobs"] => true,
        ["blobs", alg] => !alg.is_empty(),
        ["blobs", _, d] => !d.is_empty(),
        [h] => is_hex(h) || h.strip_suffix(".json").is_some_and(is_hex),
        [h, "layer.tar" | "json" | "VERSION"] => is_hex(h),
        _ => false,
    }
}

fn classify(names: &[String]) -> Kind {
    let has = |n: &str| names.iter().any(|m| m == n);
    if has("oci-layout") && has("index.json") {
        Kind::OciLayout
    } else if has("manifest.json") {
        Kind::DockerArchive
    } else {
        Kind::Rootfs
    }
}

/// What a pass over an archive's tar headers found.
struct Scan {
    names: Vec<String>,
    /// member → (offset of its data, size)
    members: HashMap<String, (u64, u64)>,
    /// false when a member name showed the tar is a rootfs (scan stopped)
    complete: bool,
}

/// Lists tar member names and data offsets, stopping early once a name
/// shows the tar is a root filesystem rather than an image archive.
/// `budget` bounds each entry's headers (see [`HeaderBudget`]); `drain`
/// reads each entry's contents through, as a stream that cannot seek
/// requires.
fn scan<'a, R: Read + 'a>(
    mut entries: impl Iterator<Item = io::Result<tar::Entry<'a, R>>>,
    budget: &HeaderBudget,
    drain: bool,
) -> Result<Scan> {
    let mut out = Scan {
        names: Vec::new(),
        members: HashMap::new(),
        complete: false,
    };
    while let Some(e) = budget.next(&mut entries) {
        let mut e = e.context("reading archive")?;
        let raw = e.path_bytes();
        if let Some(rel) = unpack::safe_rel_path(&raw).ok().flatten() {
            let name = rel.to_string_lossy().into_owned();
            if !archive_vocabulary(&name) {
                return Ok(out);
            }
            if e.header().entry_type().is_file() {
                out.members
                    .insert(name.clone(), (e.raw_file_position(), e.size()));
            }
            out.names.push(name);
        }
        if drain {
            drain_entry(&mut e).context("reading archive")?;
        }
    }
    out.complete = true;
    Ok(out)
}

/// The host platform in OCI terms.
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        a => a,
    };
    Platform {
        architecture: arch.into(),
        os: "linux".into(),
        variant: None,
    }
}

/// Picks the host's manifest from an index's descriptors.
pub fn pick_platform<'a>(manifests: &'a [Descriptor], what: &str) -> Result<&'a Descriptor> {
    let host = host_platform();
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == host.os && p.architecture == host.architecture)
        })
        .collect();
    if let Some(d) = candidates.first() {
        return Ok(d);
    }
    let offered: Vec<String> = manifests
        .iter()
        .filter_map(|d| {
            d.platform
                .as_ref()
                .map(|p| format!("{}/{}", p.os, p.architecture))
        })
        .collect();
    bail!(
        "{what} has no image for this host ({}/{}); it offers: {}",
        host.os,
        host.architecture,
        offered.join(", ")
    )
}

fn is_index(mt: &str) -> bool {
    mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST
}

/// RFC 3339 UTC timestamp of a time (the one formatter, in observe).
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    let us = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    crate::observe::rfc3339(us)
}

impl Store {
    /// Imports an OCI layout directory, OCI archive, `docker save` archive or
    /// rootfs tarball. `name` names the image (required to name a rootfs
    /// image; overrides the names an archive carries). Returns the images
    /// added; on error the store is unchanged.
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<Vec<Image>> {
        let name = name.map(Reference::parse).transpose()?;
        let md = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        let txn = self.write()?;
        let digests = if md.is_dir() {
            let src = DirSource {
                root: path.to_path_buf(),
            };
            if src.has("oci-layout") {
                import_oci(&txn, &src, name.as_ref())?
            } else if src.has("manifest.json") {
                import_docker(&txn, &src, name.as_ref())?
            } else {
                bail!("{} is not an OCI image layout (no oci-layout file) nor a docker save directory", path.display());
            }
        } else {
            let mut head = [0u8; 4];
            let n = File::open(path)?.read(&mut head)?;
            let compression = Compression::sniff(&head[..n]);
            if compression == Compression::None {
                let (file, budget) = header_budgeted(File::open(path)?);
                let mut ar = tar::Archive::new(file);
                let entries = ar.entries_with_seek().context("reading archive")?;
                let found = scan(entries, &budget, false)
                    .with_context(|| format!("{} is not a tar archive", path.display()))?;
                let kind = classify(&found.names);
                let src = TarSource {
                    path: path.to_path_buf(),
                    members: found.members,
                };
                match (found.complete, kind) {
                    (true, Kind::OciLayout) => import_oci(&txn, &src, name.as_ref())?,
                    (true, Kind::DockerArchive) => import_docker(&txn, &src, name.as_ref())?,
                    _ => vec![import_rootfs(&txn, path, name.as_ref())?],
                }
            } else {
                let (stream, budget) = header_budgeted(capped_archive(&txn, path)?);
                let mut ar = tar::Archive::new(stream);
                let entries = ar.entries().context("reading archive")?;
                let found = scan(entries, &budget, true).with_context(|| {
                    format!("{} is not a compressed tar archive", path.display())
                })?;
                let kind = if found.complete {
                    classify(&found.names)
                } else {
                    Kind::Rootfs
                };
                if kind == Kind::Rootfs {
                    vec![import_rootfs(&txn, path, name.as_ref())?]
                } else {
                    let dir = txn.tmp_path("archive");
                    fs::create_dir(&dir)?;
                    extract_archive(&txn, path, &dir)?;
                    let src = DirSource { root: dir };
                    if kind == Kind::OciLayout {
                        import_oci(&txn, &src, name.as_ref())?
                    } else {
                        import_docker(&txn, &src, name.as_ref())?
                    }
                }
            }
        };
        drop(txn);
        digests.iter().map(|d| self.image(d.as_str())).collect()
    }
}

/// The decompressed stream of a compressed image archive, capped: what it
/// inflates to is staged on disk before its layers are unpacked, so a bomb
/// must stop at `maxImageSize` (plus tar overhead) like an image does.
fn capped_archive<'a>(txn: &WriteTxn, path: &Path) -> Result<Capped<Box<dyn Read + 'a>>> {
    let l = txn.limits()?;
    let max = l.max_image_size.saturating_add(
        l.max_layer_entries
            .saturating_mul(super::limits::STREAM_OVERHEAD_PER_ENTRY),
    );
    let what = format!("the archive decompresses to more than {max} bytes");
    let dec = unpack::decompress(BufReader::new(File::open(path)?))?;
    Ok(Capped::new(dec, max, l.exceeded("maxImageSize", what)))
}

/// Extracts the regular files of a (compressed) image archive.
fn extract_archive(txn: &WriteTxn, path: &Path, dir: &Path) -> Result<()> {
    let (stream, budget) = header_budgeted(capped_archive(txn, path)?);
    let mut ar = tar::Archive::new(stream);
    let limits = txn.limits()?;
    let mut entries = ar.entries()?;
    let mut n = 0u64;
    while let Some(e) = budget.next(&mut entries) {
        if n >= limits.max_layer_entries {
            let what = format!(
                "the archive has more than {} entries",
                limits.max_layer_entries
            );
            return Err(limits.exceeded("maxLayerEntries", what).into());
        }
        n += 1;
        let mut e = e?;
        extract_entry(&mut e, dir)?;
        drain_entry(&mut e)?;
    }
    Ok(())
}

/// Extracts one directory or regular file of an image archive below `dir`.
fn extract_entry<R: Read>(e: &mut tar::Entry<'_, R>, dir: &Path) -> Result<()> {
    let raw = e.path_bytes().into_owned();
    let Some(rel) = unpack::safe_rel_path(&raw)? else {
        return Ok(());
    };
    let p = dir.join(&rel);
    match e.header().entry_type() {
        t if t.is_dir() => fs::create_dir_all(&p)?,
        t if t.is_file() => {
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut f = File::create(&p)?;
            io::copy(e, &mut f)?;
        }
        _ => {}
    }
    Ok(())
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Reads a small blob from a layout and checks its digest and size.
fn read_verified(src: &dyn Source, desc: &Descriptor) -> Result<(Digest, Vec<u8>)> {
    let d = desc.digest()?;
    let data = src.read_small(&blob_member(&d))?;
    let got = Digest::of_bytes(&data);
    if got != d {
        bail!("blob {d} in the layout does not match its digest (content hashes to {got})");
    }
    if data.len() as u64 != desc.size {
        bail!(
            "blob {d} is {} bytes, its descriptor says {}",
            data.len(),
            desc.size
        );
    }
    Ok((d, data))
}

fn import_oci(txn: &WriteTxn, src: &dyn Source, name: Option<&Reference>) -> Result<Vec<Digest>> {
    let layout: serde_json::Value = serde_json::from_slice(&src.read_small("oci-layout")?)
        .context("oci-layout is not valid JSON")?;
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        bail!("oci-layout has no imageLayoutVersion");
    }
    let index: Index = serde_json::from_slice(&src.read_small("index.json")?)
        .context("index.json is not a valid OCI index")?;
    if index.manifests.is_empty() {
        bail!("the layout's index.json lists no image");
    }
    if name.is_some() && index.manifests.len() > 1 {
        bail!(
            "the layout holds {} images; --name can only name one",
            index.manifests.len()
        );
    }
    let mut out = Vec::new();
    for top in &index.manifests {
        let mut desc = top.clone();
        let mut depth = 0;
        while is_index(&desc.media_type) {
            depth += 1;
            if depth > 4 {
                bail!("nested image indexes are too deep");
            }
            let (d, data) = read_verified(src, &desc)?;
            let inner: Index =
                serde_json::from_slice(&data).with_context(|| format!("index {d} is not valid"))?;
            desc = pick_platform(&inner.manifests, &format!("index {d}"))?.clone();
        }
        let names: Vec<Reference> = match name {
            Some(n) => vec![n.clone()],
            None => {
                // containerd and docker ≥ 25 put the full name here and a
                // bare tag in ref.name; a bare tag names no repository
                let containerd = top
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("io.containerd.image.name"));
                let full = containerd.map(String::as_str).or(top
                    .ref_name()
                    .filter(|r| r.contains(':') || r.contains('/')));
                match full {
                    Some(r) => vec![Reference::parse(r)
                        .with_context(|| format!("the layout names an image {r:?}"))?],
                    None => vec![],
                }
            }
        };
        let (md, mdata) = read_verified(src, &desc)?;
        let m: Manifest = serde_json::from_slice(&mdata)
            .with_context(|| format!("manifest {md} is not valid"))?;
        let (cd, cdata) = read_verified(src, &m.config)?;
        let c: ConfigFile =
            serde_json::from_slice(&cdata).with_context(|| format!("config {cd} is not valid"))?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            bail!(
                "image {md}: config lists {} diffIDs for {} layers",
                c.rootfs.diff_ids.len(),
                m.layers.len()
            );
        }
        txn.begin_image(m.layers.len())?;
        txn.put_blob_bytes(&cdata, Some(&cd))?;
        for (l, diff) in m.layers.iter().zip(&c.rootfs.diff_ids) {
            let (ld, diff) = (l.digest()?, Digest::parse(diff)?);
            let mut r: Box<dyn Read> = if txn.layer_verified(&ld, &diff) {
                Box::new(io::empty())
            } else {
                src.open(&blob_member(&ld))?
            };
            txn.put_layer(&mut r, Some(&ld), Some(l.size), Some(&diff))
                .with_context(|| format!("layer {ld}"))?;
        }
        out.push(txn.add_image(&mdata, Some(&md), &names)?);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn import_docker(
    txn: &WriteTxn,
    src: &dyn Source,
    name: Option<&Reference>,
) -> Result<Vec<Digest>> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(&src.read_small("manifest.json")?)
        .context("manifest.json is not a docker save manifest")?;
    if entries.is_empty() {
        bail!("manifest.json lists no image");
    }
    if name.is_some() && entries.len() > 1 {
        bail!(
            "the archive holds {} images; --name can only name one",
            entries.len()
        );
    }
    let mut out = Vec::new();
    for e in entries {
        let cdata = src.read_small(&e.config)?;
        let c: ConfigFile = serde_json::from_slice(&cdata)
            .with_context(|| format!("{} is not an image config", e.config))?;
        if c.rootfs.diff_ids.len() != e.layers.len() {
            bail!(
                "{}: config lists {} diffIDs for {} layers",
                e.config,
                c.rootfs.diff_ids.len(),
                e.layers.len()
            );
        }
        txn.begin_image(e.layers.len())?;
        let cd = txn.put_blob_bytes(&cdata, None)?;
        let mut layers = Vec::new();
        for (lpath, diff) in e.layers.iter().zip(&c.rootfs.diff_ids) {
            let diff = Digest::parse(diff)?;
            let mut r = src.open(lpath)?;
            let l = txn
                .put_layer(&mut r, None, None, Some(&diff))
                .with_context(|| format!("layer {lpath}"))?;
            layers.push(serde_json::json!({
                "mediaType": l.compression.layer_media_type(), "digest": l.digest.as_str(), "size": l.size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": cd.as_str(), "size": cdata.len()},
            "layers": layers,
        });
        let names: Vec<Reference> = match name {
            Some(n) => vec![n.clone()],
            None => e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    Reference::parse(t)
                        .with_context(|| format!("manifest.json names an image {t:?}"))
                })
                .collect::<Result<_>>()?,
        };
        out.push(txn.add_image(&serde_json::to_vec(&manifest)?, None, &names)?);
    }
    Ok(out)
}

fn import_rootfs(txn: &WriteTxn, path: &Path, name: Option<&Reference>) -> Result<Digest> {
    let mut f = File::open(path)?;
    txn.begin_image(1)?;
    let l = txn
        .put_layer(&mut f, None, None, None)
        .with_context(|| format!("importing {} as a rootfs", path.display()))?;
    let host = host_platform();
    // the tarball's mtime: importing the same file again gives the same image
    let created = rfc3339(f.metadata()?.modified()?);
    let config = serde_json::json!({
        "created": created,
        "architecture": host.architecture,
        "os": host.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.as_str()]},
        "history": [{"created": created, "created_by": "podc image import"}],
    });
    let cdata = serde_json::to_vec(&config)?;
    let cd = txn.put_blob_bytes(&cdata, None)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": cd.as_str(), "size": cdata.len()},
        "layers": [{"mediaType": l.compression.layer_media_type(), "digest": l.digest.as_str(), "size": l.size}],
    });
    let names: Vec<Reference> = name.cloned().into_iter().collect();
    txn.add_image(&serde_json::to_vec(&manifest)?, None, &names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary() {
        let h = "a".repeat(64);
        for n in [
            "oci-layout",
            "index.json",
            "blobs/sha256/x",
            "manifest.json",
            "repositories",
        ] {
            assert!(archive_vocabulary(n), "{n}");
        }
        assert!(archive_vocabulary(&format!("{h}/layer.tar")));
        assert!(archive_vocabulary(&format!("{h}.json")));
        for n in ["bin", "etc/passwd", "blobs/sha256/x/y", "abc.json"] {
            assert!(!archive_vocabulary(n), "{n}");
        }
    }

    #[test]
    fn timestamp_shape() {
        let at = |s| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        let t = rfc3339(std::time::SystemTime::now());
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }

    #[test]
    fn member_names_cannot_escape() {
        assert!(member_name("../x").is_err());
        assert!(member_name("/etc/passwd").is_err());
        assert_eq!(member_name("./blobs/sha256/ab").unwrap(), "blobs/sha256/ab");
    }
}
