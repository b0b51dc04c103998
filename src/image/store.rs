//! The on-disk store: an OCI image layout plus unpacked layers.
//!
//! ```text
//! <root>/images/
//!   oci-layout                 {"imageLayoutVersion":"1.0.0"}
//!   index.json                 OCI index: one descriptor per name (the commit point)
//!   blobs/sha256/<hex>         manifests, configs, layer blobs, verified on arrival
//!   layers/<diffid-hex>/diff/  one unpacked layer, an overlayfs lower dir (read-only)
//!   layers/<diffid-hex>/meta.json
//!   diffids/<blob-hex>         the diffID this layer blob was verified to unpack to
//!   users/<holder>.json        images a pod uses (kept by rm/prune)
//!   tmp/                       staging; emptied by every writer before it starts
//!   downloads/<blob-hex>       a blob a pull is fetching, outside the store lock
//!   lock                       flock: exclusive for writers, shared for readers
//! ```
//!
//! Atomicity: a writer stages every blob and layer in `tmp/`, verifies it,
//! then renames it into place, and only then replaces `index.json` (itself
//! through a temporary file and a rename). An image exists once the index
//! names it; before that its parts are either in `tmp/` or complete and
//! verified but unreferenced. The next writer, or the next reader that finds
//! `tmp/` not empty while no writer runs, throws both away. A `kill -9` at
//! any moment therefore leaves the store consistent.

use super::limits::{Capped, Limits};
use super::reference::{Digest, Reference};
use super::unpack::{self, Compression, HashingReader};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest manifest, index or config podc reads into memory.
pub const MAX_JSON: u64 = 16 << 20;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest> {
        Digest::parse(&self.digest)
    }
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .as_ref()?
            .get(ANN_REF_NAME)
            .map(String::as_str)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The runtime part of an image config (`config` in the OCI config JSON).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// The OCI image config file.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub config: ImageConfig,
    pub rootfs: RootFs,
}

fn null_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One layer of a stored image.
#[derive(Clone, Debug, Serialize)]
pub struct LayerInfo {
    /// Digest of the (possibly compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar stream.
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Unpacked size in bytes (regular file contents).
    #[serde(rename = "unpackedSize")]
    pub unpacked_size: u64,
}

/// A stored image, as resolved from a reference.
#[derive(Clone, Debug, Serialize)]
pub struct Image {
    /// The manifest digest: the image's identity in podc.
    pub digest: Digest,
    /// Full normalised names pointing at it (may be empty).
    pub names: Vec<String>,
    #[serde(rename = "configDigest")]
    pub config_digest: Digest,
    pub created: Option<String>,
    pub architecture: String,
    pub os: String,
    pub config: ImageConfig,
    /// Bottom (first applied) to top.
    pub layers: Vec<LayerInfo>,
    #[serde(skip)]
    store_dir: PathBuf,
}

impl Image {
    /// Read-only layer directories for overlayfs `lowerdir=`, **top first**
    /// (the order overlayfs wants).
    pub fn lower_dirs(&self) -> Vec<PathBuf> {
        self.layers
            .iter()
            .rev()
            .map(|l| layer_diff_dir(&self.store_dir, &l.diff_id))
            .collect()
    }
    /// Sum of the unpacked layer sizes.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.unpacked_size).sum()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct LayerMeta {
    #[serde(rename = "diffID")]
    diff_id: String,
    size: u64,
    entries: u64,
}

fn layer_diff_dir(store_dir: &Path, diff_id: &Digest) -> PathBuf {
    store_dir.join("layers").join(diff_id.hex()).join("diff")
}

/// The local image store.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    state_root: PathBuf,
}

/// A held store lock (shared or exclusive); released on drop.
pub struct StoreLock {
    _file: File,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating if needed) the store under the podc state root.
    /// The state root and the store are root-only ([`crate::perms`]):
    /// layers keep the setuid binaries and device nodes images ship, which
    /// no other host user may reach. A store an older podc made 0755 is
    /// tightened here.
    pub fn open(state_root: &Path) -> Result<Store> {
        let dir = state_root.join("images");
        for d in [state_root, dir.as_path()] {
            crate::perms::private_dir(d).context("opening the image store (root only)")?;
        }
        for d in ["blobs/sha256", "layers", "tmp", "users"] {
            fs::create_dir_all(dir.join(d))
                .with_context(|| format!("creating image store at {}", dir.display()))?;
        }
        // newer than the first stores: a reader without write access to an
        // older store does without them (writers make sure they exist)
        for d in ["diffids", "downloads"] {
            let _ = fs::create_dir_all(dir.join(d));
        }
        let store = Store {
            dir,
            state_root: state_root.to_path_buf(),
        };
        if !store.dir.join("index.json").exists() || !store.dir.join("oci-layout").exists() {
            let txn = store.write()?;
            if !store.dir.join("oci-layout").exists() {
                txn.write_atomic(
                    &store.dir.join("oci-layout"),
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )?;
            }
            if !store.dir.join("index.json").exists() {
                txn.write_index(&Index {
                    schema_version: 2,
                    media_type: Some(MT_OCI_INDEX.into()),
                    manifests: vec![],
                })?;
            }
        }
        Ok(store)
    }

    /// The store directory (`<root>/images`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The podc state root the store lives under.
    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers").join(diff_id.hex())
    }

    /// Whether the unpacked layer with this diffID is present.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).join("meta.json").is_file()
    }

    /// Where the diffID that blob `d` was verified to unpack to is recorded.
    fn diffid_record(&self, d: &Digest) -> PathBuf {
        self.dir.join("diffids").join(d.hex())
    }

    /// Whether blob `d` and layer `diff_id` are stored and `d` was verified
    /// to unpack to exactly that layer. Holding a blob and a layer is not
    /// enough to reuse them together: an image could pair its own blob with
    /// the diffID of another image's private layer.
    pub(crate) fn layer_verified(&self, d: &Digest, diff_id: &Digest) -> bool {
        self.blob_path(d).is_file()
            && self.has_layer(diff_id)
            && fs::read_to_string(self.diffid_record(d)).is_ok_and(|s| s == diff_id.as_str())
    }

    /// Takes the download slot of blob `d` (`downloads/<hex>`, emptied):
    /// an exclusive flock on the file itself, so a second pull of the same
    /// blob waits for the first and then finds it in the store.
    pub(crate) fn download_slot(&self, d: &Digest) -> Result<DownloadSlot> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.dir.join("downloads");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(d.hex());
        loop {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| anyhow!("locking {}: {e}", path.display()))?;
            // the holder we waited for removed the name: lock the new one
            if same_file(&file, &path) {
                file.set_len(0)?;
                return Ok(DownloadSlot { file, path });
            }
        }
    }

    /// Removes downloads nobody holds (left by a killed pull).
    fn clean_downloads(&self) {
        let Ok(rd) = fs::read_dir(self.dir.join("downloads")) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(f) = File::open(&p) else { continue };
            let free =
                rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
            if free && same_file(&f, &p) {
                let _ = fs::remove_file(&p);
            }
        }
    }

    fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        self.lock_op(exclusive, op)
    }

    fn lock_op(&self, exclusive: bool, op: rustix::fs::FlockOperation) -> Result<StoreLock> {
        let p = self.dir.join("lock");
        // readers need no write access to the store (flock works on a
        // read-only descriptor); the first writer creates the file
        let f = if exclusive || !p.exists() {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
        } else {
            File::open(&p)
        }
        .with_context(|| format!("opening {}", p.display()))?;
        rustix::fs::flock(&f, op).map_err(|e| anyhow!("locking {}: {e}", p.display()))?;
        Ok(StoreLock { _file: f })
    }

    /// Takes the shared lock: the store does not change while it is held.
    /// When an interrupted writer left something behind and no writer is
    /// running, cleans it up first (so the next command of any kind does).
    pub fn read_lock(&self) -> Result<StoreLock> {
        let lock = self.lock(false)?;
        let leftovers = fs::read_dir(self.dir.join("tmp"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !leftovers {
            return Ok(lock);
        }
        drop(lock);
        // best effort: a busy store or a reader without write access skips it
        if let Ok(l) = self.lock_op(true, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            let _ = self.write_locked(l);
        }
        self.lock(false)
    }

    /// Takes the exclusive lock, throws away what an interrupted writer left
    /// in `tmp/`, and returns a transaction staging area.
    pub(crate) fn write(&self) -> Result<WriteTxn<'_>> {
        self.write_locked(self.lock(true)?)
    }

    fn write_locked(&self, lock: StoreLock) -> Result<WriteTxn<'_>> {
        let tmp_root = self.dir.join("tmp");
        for e in
            fs::read_dir(&tmp_root).with_context(|| format!("reading {}", tmp_root.display()))?
        {
            let p = e?.path();
            // Layers unpacked from hostile images: any depth.
            let r = if p.is_dir() && !p.is_symlink() {
                crate::perms::remove_tree(&p)
            } else {
                fs::remove_file(&p)
            };
            r.with_context(|| format!("cleaning up {}", p.display()))?;
        }
        let tmp = tmp_root.join(format!(
            "txn-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&tmp)?;
        // added after the first stores: made by writers, readers need neither
        for d in ["diffids", "downloads"] {
            fs::create_dir_all(self.dir.join(d))?;
        }
        self.clean_downloads();
        let txn = WriteTxn {
            store: self,
            _lock: lock,
            tmp,
            seq: AtomicU64::new(0),
            pending: Default::default(),
            limits: Default::default(),
            image_used: Default::default(),
        };
        // a writer killed between moving its parts into place and naming
        // them in the index leaves complete but unreferenced blobs/layers
        if self.dir.join("index.json").exists() {
            txn.gc()?;
        }
        Ok(txn)
    }

    pub(crate) fn read_index(&self) -> Result<Index> {
        let p = self.dir.join("index.json");
        let data = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&data)
            .with_context(|| format!("{} is not a valid OCI index", p.display()))
    }

    pub(crate) fn read_blob_json<T: serde::de::DeserializeOwned>(
        &self,
        d: &Digest,
    ) -> Result<(T, Vec<u8>)> {
        let p = self.blob_path(d);
        let data = fs::read(&p).with_context(|| format!("reading blob {d}"))?;
        let v = serde_json::from_slice(&data)
            .with_context(|| format!("blob {d} is not valid JSON of the expected kind"))?;
        Ok((v, data))
    }

    fn load_image(&self, digest: &Digest, names: Vec<String>) -> Result<Image> {
        let (m, _): (Manifest, _) = self.read_blob_json(digest)?;
        let config_digest = m.config.digest()?;
        let (c, _): (ConfigFile, _) = self.read_blob_json(&config_digest)?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            bail!(
                "image {digest}: config lists {} diffIDs for {} layers",
                c.rootfs.diff_ids.len(),
                m.layers.len()
            );
        }
        let mut layers = Vec::new();
        for (l, d) in m.layers.iter().zip(&c.rootfs.diff_ids) {
            let diff_id = Digest::parse(d)?;
            let meta: LayerMeta = fs::read(self.layer_dir(&diff_id).join("meta.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            layers.push(LayerInfo {
                digest: l.digest()?,
                diff_id,
                media_type: l.media_type.clone(),
                size: l.size,
                unpacked_size: meta.size,
            });
        }
        Ok(Image {
            digest: digest.clone(),
            names,
            config_digest,
            created: c.created,
            architecture: c.architecture,
            os: c.os,
            config: c.config,
            layers,
            store_dir: self.dir.clone(),
        })
    }

    /// Every stored image with its names, in index order.
    pub fn list(&self) -> Result<Vec<Image>> {
        let _l = self.read_lock()?;
        self.list_unlocked()
    }

    fn list_unlocked(&self) -> Result<Vec<Image>> {
        let index = self.read_index()?;
        let mut by_digest: Vec<(Digest, Vec<String>)> = Vec::new();
        for d in &index.manifests {
            let dg = d.digest()?;
            let pos = match by_digest.iter().position(|(x, _)| *x == dg) {
                Some(p) => p,
                None => {
                    by_digest.push((dg, vec![]));
                    by_digest.len() - 1
                }
            };
            if let Some(n) = d.ref_name() {
                by_digest[pos].1.push(n.to_string());
            }
        }
        by_digest
            .into_iter()
            .map(|(d, names)| self.load_image(&d, names))
            .collect()
    }

    /// Resolves `reference` (a name, `name:tag`, `name@sha256:…`, a full
    /// `sha256:…` digest or an unambiguous hex prefix of ≥ 12 digits of the
    /// manifest digest) to a stored image. `Ok(None)` when it is not stored.
    pub fn resolve(&self, reference: &str) -> Result<Option<Image>> {
        let _l = self.read_lock()?;
        self.resolve_unlocked(reference)
    }

    pub(crate) fn resolve_unlocked(&self, reference: &str) -> Result<Option<Image>> {
        let images = self.list_unlocked()?;
        if let Some(hex) = reference.strip_prefix("sha256:") {
            let d = Digest::parse(&format!("sha256:{hex}"))?;
            return Ok(images.into_iter().find(|i| i.digest == d));
        }
        if (12..=64).contains(&reference.len()) && reference.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let hex = reference.to_ascii_lowercase();
            let hits: Vec<_> = images
                .iter()
                .filter(|i| i.digest.hex().starts_with(&hex))
                .collect();
            match hits.len() {
                0 => {}
                1 => return Ok(Some(hits[0].clone())),
                n => bail!("{reference:?} matches {n} images; give more digits"),
            }
        }
        let r = Reference::parse(reference)?;
        if let Some(d) = &r.digest {
            return Ok(images.into_iter().find(|i| i.digest == *d));
        }
        let full = r.full();
        Ok(images.into_iter().find(|i| i.names.contains(&full)))
    }

    /// Like [`Store::resolve`] but a missing image is an error.
    pub fn image(&self, reference: &str) -> Result<Image> {
        self.resolve(reference)?
            .ok_or_else(|| anyhow!("image {reference:?} is not in the store (see `podc image ls`)"))
    }

    // ---- users: which images pods use ----

    fn users_path(&self, holder: &str) -> Result<PathBuf> {
        if holder.is_empty()
            || holder.len() > 200
            || holder.starts_with('.')
            || !holder
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        {
            bail!("invalid image user name {holder:?}: use letters, digits, '.', '_', '-', '@'");
        }
        Ok(self.dir.join("users").join(format!("{holder}.json")))
    }

    /// Records that `holder` (a pod) uses these images; `rm` and `prune`
    /// keep them. Replaces what `holder` recorded before.
    pub fn set_users(&self, holder: &str, images: &[Digest]) -> Result<()> {
        let p = self.users_path(holder)?;
        let txn = self.write()?;
        let list: Vec<&str> = images.iter().map(Digest::as_str).collect();
        txn.write_atomic(&p, &serde_json::to_vec(&list)?)
    }

    /// Forgets what `holder` uses.
    pub fn clear_users(&self, holder: &str) -> Result<()> {
        let p = self.users_path(holder)?;
        let _txn = self.write()?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Image digest → holders that use it.
    pub fn users(&self) -> Result<BTreeMap<Digest, Vec<String>>> {
        let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for e in fs::read_dir(self.dir.join("users"))? {
            let p = e?.path();
            let Some(holder) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let list: Vec<String> = serde_json::from_slice(&fs::read(&p)?)
                .with_context(|| format!("{} is not a JSON list of digests", p.display()))?;
            for d in list {
                out.entry(Digest::parse(&d)?)
                    .or_default()
                    .push(holder.to_string());
            }
        }
        Ok(out)
    }

    // ---- removal ----

    /// Removes a name, or (given a digest) an image with all its names, then
    /// deletes blobs and layers nothing refers to any more. An image a pod
    /// uses (see [`Store::set_users`]) is kept unless `force`.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Image> {
        let txn = self.write()?;
        let img = self
            .resolve_unlocked(reference)?
            .ok_or_else(|| anyhow!("image {reference:?} is not in the store"))?;
        let by_name = Reference::parse(reference)
            .ok()
            .filter(|r| r.digest.is_none())
            .map(|r| r.full());
        let by_name = by_name.filter(|n| img.names.contains(n));
        let mut index = self.read_index()?;
        let last = by_name.is_none() || img.names.len() <= 1;
        if last && !force {
            if let Some(holders) = self.users()?.get(&img.digest) {
                bail!(
                    "image {reference:?} is used by {}; stop those pods first or use --force",
                    holders.join(", ")
                );
            }
        }
        let dg = img.digest.as_str();
        match &by_name {
            Some(n) if !last => index
                .manifests
                .retain(|d| !(d.digest == dg && d.ref_name() == Some(n.as_str()))),
            _ => index.manifests.retain(|d| d.digest != dg),
        }
        txn.write_index(&index)?;
        txn.gc()?;
        Ok(img)
    }

    /// Removes every image no pod uses, and every unreferenced blob and
    /// layer. Returns the removed images.
    pub fn prune(&self) -> Result<Vec<Image>> {
        let txn = self.write()?;
        let users = self.users()?;
        let images = self.list_unlocked()?;
        let mut index = self.read_index()?;
        let removed: Vec<Image> = images
            .into_iter()
            .filter(|i| !users.contains_key(&i.digest))
            .collect();
        index
            .manifests
            .retain(|d| !removed.iter().any(|i| i.digest.as_str() == d.digest));
        txn.write_index(&index)?;
        txn.gc()?;
        Ok(removed)
    }

    /// Verifies the whole store: every indexed image's manifest, config and
    /// layer blobs hash to their digests, every layer is unpacked, and no
    /// staging leftovers are visible. Returns the problems found.
    pub fn check(&self) -> Result<Vec<String>> {
        let _l = self.read_lock()?;
        let mut problems = Vec::new();
        let index = self.read_index()?;
        let mut seen = BTreeSet::new();
        for d in &index.manifests {
            let dg = d.digest()?;
            if !seen.insert(dg.clone()) {
                continue;
            }
            let mut blobs = vec![dg.clone()];
            match self.load_image(&dg, vec![]) {
                Ok(img) => {
                    blobs.push(img.config_digest.clone());
                    for l in &img.layers {
                        blobs.push(l.digest.clone());
                        if !self.has_layer(&l.diff_id)
                            || !layer_diff_dir(&self.dir, &l.diff_id).is_dir()
                        {
                            problems
                                .push(format!("image {dg}: layer {} is not unpacked", l.diff_id));
                        }
                    }
                }
                Err(e) => problems.push(format!("image {dg}: {e:#}")),
            }
            for b in blobs {
                match hash_file(&self.blob_path(&b)) {
                    Ok((got, _)) if got == b => {}
                    Ok((got, _)) => problems.push(format!("blob {b} hashes to {got}")),
                    Err(e) => problems.push(format!("blob {b}: {e:#}")),
                }
            }
        }
        for e in fs::read_dir(self.dir.join("layers"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if Digest::parse(&format!("sha256:{name}")).is_err()
                || !e.path().join("meta.json").is_file()
            {
                problems.push(format!("stray entry layers/{name}"));
            }
        }
        Ok(problems)
    }
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A blob file a pull downloads into outside the store lock; the name is
/// removed when the pull is done with it (committed or failed).
pub(crate) struct DownloadSlot {
    file: File,
    path: PathBuf,
}

impl DownloadSlot {
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Nothing downloaded into it yet.
    pub fn is_empty(&self) -> bool {
        self.file.metadata().map_or(true, |m| m.len() == 0)
    }

    /// The downloaded content, from its start.
    pub fn reader(&self) -> Result<File> {
        use std::io::Seek;
        let mut f = self.file.try_clone()?;
        f.rewind()?;
        Ok(f)
    }
}

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        // still locked: nobody else uses the name before it is gone
        let _ = fs::remove_file(&self.path);
    }
}

fn hash_file(p: &Path) -> Result<(Digest, u64)> {
    let f = File::open(p)?;
    let mut r = HashingReader::new(BufReader::with_capacity(1 << 20, f), None::<io::Sink>);
    r.drain()?;
    let (d, n, _) = r.finish();
    Ok((d, n))
}

/// Result of storing one layer.
#[derive(Debug, Clone)]
pub(crate) struct StoredLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub compression: Compression,
}

/// A write transaction: holds the exclusive lock and a private staging dir.
/// Staged blobs and layers become visible only through [`WriteTxn::commit`].
pub(crate) struct WriteTxn<'s> {
    pub store: &'s Store,
    _lock: StoreLock,
    tmp: PathBuf,
    seq: AtomicU64,
    /// final path → staged path
    pending: std::cell::RefCell<HashMap<PathBuf, PathBuf>>,
    /// the store's caps, read on first use
    limits: std::cell::OnceCell<Limits>,
    /// bytes the layers of the current image unpacked to so far
    image_used: std::cell::Cell<u64>,
}

impl WriteTxn<'_> {
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        self.tmp.join(format!(
            "{what}-{}",
            self.seq.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// The caps of `<root>/image-limits.json` (read once per transaction).
    pub fn limits(&self) -> Result<&Limits> {
        if let Some(l) = self.limits.get() {
            return Ok(l);
        }
        let l = Limits::load(&self.store.state_root)?;
        Ok(self.limits.get_or_init(|| l))
    }

    /// Starts an image of `layers` layers: checks the layer count and starts
    /// counting its unpacked size against `maxImageSize`.
    pub fn begin_image(&self, layers: usize) -> Result<()> {
        let l = self.limits()?;
        if layers as u64 > l.max_layers {
            let what = format!("the image has {layers} layers");
            return Err(l.exceeded("maxLayers", what).into());
        }
        self.image_used.set(0);
        Ok(())
    }

    fn exists(&self, final_path: &Path) -> bool {
        final_path.exists() || self.pending.borrow().contains_key(final_path)
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.exists(&self.store.blob_path(d))
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.exists(&self.store.layer_dir(diff_id).join("meta.json"))
            || self
                .pending
                .borrow()
                .contains_key(&self.store.layer_dir(diff_id))
    }

    /// Writes `data` to `path` through a temporary file and a rename.
    pub fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let t = self.tmp_path("file");
        let mut f = File::create(&t)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&t, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }

    pub fn write_index(&self, index: &Index) -> Result<()> {
        let data = serde_json::to_vec_pretty(index)?;
        self.write_atomic(&self.store.dir.join("index.json"), &data)
    }

    /// Stages a small blob held in memory, checking it against `expected`.
    pub fn put_blob_bytes(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let d = Digest::of_bytes(data);
        if let Some(e) = expected {
            if *e != d {
                bail!("blob {e} does not match its digest: its content hashes to {d}");
            }
        }
        if !self.has_blob(&d) {
            let t = self.tmp_path("blob");
            fs::write(&t, data)?;
            self.pending
                .borrow_mut()
                .insert(self.store.blob_path(&d), t);
        }
        Ok(d)
    }

    /// Streams one layer blob: stores the blob, unpacks it into a staged
    /// layer directory, and checks the blob digest/size and the diffID when
    /// they are known. Skips work already done (blob or layer present).
    pub fn put_layer(
        &self,
        reader: &mut dyn Read,
        digest: Option<&Digest>,
        size: Option<u64>,
        diff_id: Option<&Digest>,
    ) -> Result<StoredLayer> {
        let have_blob = digest.is_some_and(|d| self.has_blob(d));
        let have_layer = diff_id.is_some_and(|d| self.has_layer(d));
        let reusable = digest
            .zip(diff_id)
            .filter(|(d, diff)| self.layer_verified(d, diff));
        if let Some((d, diff)) = reusable {
            let d = d.clone();
            let head = {
                let mut h = [0u8; 4];
                let n =
                    File::open(self.pending_or_final(&self.store.blob_path(&d)))?.read(&mut h)?;
                h[..n].to_vec()
            };
            return Ok(StoredLayer {
                size: size.unwrap_or(0),
                diff_id: diff.clone(),
                compression: Compression::sniff(&head),
                digest: d,
            });
        }
        let blob_tmp = self.tmp_path("blob");
        let blob_out = if have_blob {
            None
        } else {
            Some(BufWriter::with_capacity(1 << 20, File::create(&blob_tmp)?))
        };
        let limits = self.limits()?;
        let stream_err = |what: &str| {
            let max = limits.max_layer_stream();
            let what = format!("the layer's {what} stream is longer than {max} bytes (the size cap plus tar overhead)");
            limits.exceeded("maxLayerSize", what)
        };
        let reader = Capped::new(reader, limits.max_layer_stream(), stream_err("blob"));
        let mut tee = HashingReader::new(reader, blob_out);
        let layer_tmp = self.tmp_path("layer");
        let compression;
        let mut unpacked = None;
        let unpacked_diff;
        {
            let mut br = io::BufReader::with_capacity(1 << 20, &mut tee);
            let head = io::BufRead::fill_buf(&mut br).context("reading layer")?;
            compression = Compression::sniff(head);
            let dec = unpack::decompress(br)?;
            let dec = Capped::new(dec, limits.max_layer_stream(), stream_err("tar"));
            let mut diff = HashingReader::new(dec, None::<io::Sink>);
            if have_layer {
                diff.drain().context("reading layer")?;
            } else {
                fs::create_dir(&layer_tmp)?;
                fs::create_dir(layer_tmp.join("diff"))?;
                let caps = unpack::LayerCaps {
                    limits,
                    image_left: limits.max_image_size.saturating_sub(self.image_used.get()),
                };
                let stats = unpack::unpack_layer(&mut diff, &layer_tmp.join("diff"), &caps)?;
                self.image_used.set(self.image_used.get() + stats.size);
                diff.drain().context("reading layer")?;
                unpacked = Some(stats);
            }
            let (got_diff, _, _) = diff.finish();
            if let Some(stats) = unpacked {
                let meta = LayerMeta {
                    diff_id: got_diff.to_string(),
                    size: stats.size,
                    entries: stats.entries,
                };
                fs::write(layer_tmp.join("meta.json"), serde_json::to_vec(&meta)?)?;
                self.pending
                    .borrow_mut()
                    .insert(self.store.layer_dir(&got_diff), layer_tmp.clone());
            }
            // keep the uncompressed digest for the return value
            unpacked_diff = got_diff;
        }
        tee.drain().context("reading layer")?;
        let (got, n, out) = tee.finish();
        if let Some(mut out) = out {
            out.flush()?;
        }
        if let Some(want) = digest {
            if *want != got {
                self.pending.borrow_mut().retain(|_, v| *v != layer_tmp);
                bail!("layer blob {want} does not match its digest: its content hashes to {got}");
            }
        }
        if let Some(want) = size {
            if want != n {
                self.pending.borrow_mut().retain(|_, v| *v != layer_tmp);
                bail!("layer blob {got} is {n} bytes, its descriptor says {want}");
            }
        }
        if let Some(want) = diff_id {
            if *want != unpacked_diff {
                self.pending.borrow_mut().retain(|_, v| *v != layer_tmp);
                bail!("layer diffID mismatch: the image config says {want}, the layer content hashes to {unpacked_diff}");
            }
        }
        if !have_blob && !self.has_blob(&got) {
            self.pending
                .borrow_mut()
                .insert(self.store.blob_path(&got), blob_tmp);
        }
        self.record_diff_id(&got, &unpacked_diff)?;
        Ok(StoredLayer {
            digest: got,
            size: n,
            diff_id: unpacked_diff,
            compression,
        })
    }

    /// [`Store::layer_verified`], counting what this transaction staged.
    pub fn layer_verified(&self, d: &Digest, diff_id: &Digest) -> bool {
        let record = self.pending_or_final(&self.store.diffid_record(d));
        self.has_blob(d)
            && self.has_layer(diff_id)
            && fs::read_to_string(record).is_ok_and(|s| s == diff_id.as_str())
    }

    /// Stages the record that blob `d` unpacks to `diff_id` (both hashed
    /// from the same stream just now).
    fn record_diff_id(&self, d: &Digest, diff_id: &Digest) -> Result<()> {
        let t = self.tmp_path("diffid");
        fs::write(&t, diff_id.as_str())?;
        self.pending
            .borrow_mut()
            .insert(self.store.diffid_record(d), t);
        Ok(())
    }

    fn pending_or_final(&self, final_path: &Path) -> PathBuf {
        self.pending
            .borrow()
            .get(final_path)
            .cloned()
            .unwrap_or_else(|| final_path.to_path_buf())
    }

    /// Reads a staged or stored blob.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.pending_or_final(&self.store.blob_path(d));
        fs::read(&p).with_context(|| format!("reading blob {d}"))
    }

    /// Adds an image: stages the manifest, checks that its config and layers
    /// are present, makes everything staged visible, and points `names` at it
    /// in the index (moving each name away from any image it named before).
    pub fn add_image(
        &self,
        manifest: &[u8],
        expected: Option<&Digest>,
        names: &[Reference],
    ) -> Result<Digest> {
        let m: Manifest =
            serde_json::from_slice(manifest).context("manifest is not a valid image manifest")?;
        let config = self.read_blob(&m.config.digest()?)?;
        let c: ConfigFile = serde_json::from_slice(&config).context("image config is not valid")?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            bail!(
                "image config lists {} diffIDs for {} layers",
                c.rootfs.diff_ids.len(),
                m.layers.len()
            );
        }
        for (l, d) in m.layers.iter().zip(&c.rootfs.diff_ids) {
            let (ld, dd) = (l.digest()?, Digest::parse(d)?);
            if !self.has_blob(&ld) || !self.has_layer(&dd) {
                bail!("layer {ld} of the image is missing");
            }
        }
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| MT_OCI_MANIFEST.into());
        let digest = self.put_blob_bytes(manifest, expected)?;
        // make the staged layers and blobs durable, then visible, then named
        if let Ok(f) = File::open(&self.store.dir) {
            let _ = rustix::fs::syncfs(&f);
        }
        self.commit()?;
        let mut index = self.store.read_index()?;
        let dg = digest.to_string();
        let desc = |name: Option<&str>| Descriptor {
            media_type: media_type.clone(),
            digest: dg.clone(),
            size: manifest.len() as u64,
            annotations: name.map(|n| BTreeMap::from([(ANN_REF_NAME.to_string(), n.to_string())])),
            platform: None,
        };
        if names.is_empty() {
            if !index.manifests.iter().any(|d| d.digest == dg) {
                index.manifests.push(desc(None));
            }
        } else {
            index
                .manifests
                .retain(|d| !(d.digest == dg && d.ref_name().is_none()));
            for n in names {
                let full = n.full();
                // the image it named before keeps existing, untagged
                let old: Vec<String> = index
                    .manifests
                    .iter()
                    .filter(|d| d.ref_name() == Some(full.as_str()))
                    .map(|d| d.digest.clone())
                    .collect();
                index
                    .manifests
                    .retain(|d| d.ref_name() != Some(full.as_str()));
                for o in old {
                    if o != dg && !index.manifests.iter().any(|d| d.digest == o) {
                        let mut keep = desc(None);
                        keep.digest = o;
                        index.manifests.push(keep);
                    }
                }
                index.manifests.push(desc(Some(&full)));
            }
        }
        self.write_index(&index)?;
        Ok(digest)
    }

    /// Moves every staged blob and layer into place.
    pub fn commit(&self) -> Result<()> {
        let mut pending = self.pending.borrow_mut();
        // layers first, blobs after: a visible blob never lacks its layer;
        // the blob → diffID records last, once both exist
        let mut items: Vec<(PathBuf, PathBuf)> = pending.drain().collect();
        let records = self.store.dir.join("diffids");
        items.sort_by_key(|(f, _)| {
            match (
                f.starts_with(self.store.dir.join("layers")),
                f.starts_with(&records),
            ) {
                (true, _) => 0,
                (_, false) => 1,
                (_, true) => 2,
            }
        });
        for (final_path, staged) in items {
            // a record is replaced: the blob was verified again just now
            if final_path.exists() && !final_path.starts_with(&records) {
                continue;
            }
            fs::rename(&staged, &final_path).with_context(|| {
                format!("moving {} into {}", staged.display(), final_path.display())
            })?;
        }
        Ok(())
    }

    /// Deletes blobs and layers that no indexed image refers to.
    pub fn gc(&self) -> Result<()> {
        let index = self.store.read_index()?;
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for d in &index.manifests {
            let dg = d.digest()?;
            if let Ok(img) = self.store.load_image(&dg, vec![]) {
                blobs.insert(img.config_digest.hex().to_string());
                for l in img.layers {
                    blobs.insert(l.digest.hex().to_string());
                    layers.insert(l.diff_id.hex().to_string());
                }
            }
            blobs.insert(dg.hex().to_string());
        }
        for e in fs::read_dir(self.store.dir.join("blobs/sha256"))? {
            let e = e?;
            if !blobs.contains(e.file_name().to_string_lossy().as_ref()) {
                fs::remove_file(e.path())?;
            }
        }
        for e in fs::read_dir(self.store.dir.join("diffids"))? {
            let e = e?;
            if !blobs.contains(e.file_name().to_string_lossy().as_ref()) {
                fs::remove_file(e.path())?;
            }
        }
        for e in fs::read_dir(self.store.dir.join("layers"))? {
            let e = e?;
            if !layers.contains(e.file_name().to_string_lossy().as_ref()) {
                // out of sight first, then delete: never a half-deleted layer
                let t = self.tmp_path("gc");
                fs::rename(e.path(), &t)?;
                crate::perms::remove_tree(&t)?;
            }
        }
        Ok(())
    }
}

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        let _ = crate::perms::remove_tree(&self.tmp);
    }
}
