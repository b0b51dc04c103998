//! Caps on what one image may consume when it is imported or pulled.
//!
//! Layers come from image authors and registries, who are not trusted: a
//! decompression bomb (a few MB of gzip that inflate to terabytes), a layer
//! of millions of empty files or an image of thousands of layers must not
//! fill the host's disk or inode table. Every unpacking goes through these
//! caps (import and pull share [`super::unpack::unpack_layer`]); an image
//! over one fails with a [`LimitError`] naming the limit and where to raise
//! it, and leaves nothing behind (the store's staging is thrown away).
//!
//! The caps are read from `<root>/image-limits.json` (all keys optional):
//! `{"maxLayerSize": "8Gi", "maxImageSize": "16Gi", "maxLayerEntries": 1000000, "maxLayers": 128}`.
//! Sizes are bytes or Kubernetes quantities (`512Mi`, `8Gi`).

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;
use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The file under the podc state root that holds the caps.
pub const LIMITS_FILE: &str = "image-limits.json";

/// Default cap on the bytes of regular files one layer unpacks to.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 8 << 30;
/// Default cap on the bytes of regular files the layers of one image unpack to.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 16 << 30;
/// Default cap on the entries of one layer.
pub const DEFAULT_MAX_LAYER_ENTRIES: u64 = 1_000_000;
/// Default cap on the layers of one image.
pub const DEFAULT_MAX_LAYERS: u64 = 128;
/// What a tar stream may carry per allowed entry beyond file contents
/// (a 512-byte header, long-name/pax records, padding to 512 bytes).
pub const STREAM_OVERHEAD_PER_ENTRY: u64 = 2048;

/// The caps in force for a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_layer_size: u64,
    pub max_image_size: u64,
    pub max_layer_entries: u64,
    pub max_layers: u64,
    /// Where they can be raised (`<root>/image-limits.json`).
    pub file: PathBuf,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_layer_size: DEFAULT_MAX_LAYER_SIZE,
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            max_layer_entries: DEFAULT_MAX_LAYER_ENTRIES,
            max_layers: DEFAULT_MAX_LAYERS,
            file: PathBuf::from(LIMITS_FILE),
        }
    }
}

/// A size: bytes, or a quantity string such as `8Gi`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Quantity(String),
}

impl Size {
    fn bytes(&self, key: &str) -> Result<u64> {
        match self {
            Size::Bytes(b) => Ok(*b),
            Size::Quantity(s) => crate::quantity::parse(s)
                .ok()
                .and_then(|q| q.to_bytes_ceil())
                .ok_or_else(|| anyhow!("{key}: {s:?} is not a size (bytes, or like \"8Gi\")")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LimitsFile {
    max_layer_size: Option<Size>,
    max_image_size: Option<Size>,
    max_layer_entries: Option<u64>,
    max_layers: Option<u64>,
}

impl Limits {
    /// Reads `<state_root>/image-limits.json`; a missing file means the
    /// defaults, a missing key that key's default.
    pub fn load(state_root: &Path) -> Result<Limits> {
        let file = state_root.join(LIMITS_FILE);
        let mut l = Limits {
            file: file.clone(),
            ..Limits::default()
        };
        let data = match std::fs::read(&file) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(l),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let shape = "{\"maxLayerSize\": \"8Gi\", \"maxImageSize\": \"16Gi\", \"maxLayerEntries\": 1000000, \"maxLayers\": 128}";
        let f: LimitsFile = serde_json::from_slice(&data)
            .with_context(|| format!("{} must look like {shape}", file.display()))?;
        let ctx = || format!("in {}", file.display());
        if let Some(s) = f.max_layer_size {
            l.max_layer_size = s.bytes("maxLayerSize").with_context(ctx)?;
        }
        if let Some(s) = f.max_image_size {
            l.max_image_size = s.bytes("maxImageSize").with_context(ctx)?;
        }
        l.max_layer_entries = f.max_layer_entries.unwrap_or(l.max_layer_entries);
        l.max_layers = f.max_layers.unwrap_or(l.max_layers);
        Ok(l)
    }

    /// Longest tar stream (compressed or not) one layer may be: its file
    /// contents plus the per-entry overhead of as many entries as allowed.
    /// Bounds the CPU spent on, and the blob bytes kept of, data that is
    /// never unpacked (padding, trailing bytes after the end of the tar).
    pub fn max_layer_stream(&self) -> u64 {
        self.max_layer_size.saturating_add(
            self.max_layer_entries
                .saturating_mul(STREAM_OVERHEAD_PER_ENTRY),
        )
    }

    /// The error for going over the cap `key` (`maxLayerSize`, ...).
    pub fn exceeded(&self, key: &'static str, what: String) -> LimitError {
        let limit = match key {
            "maxLayerSize" => self.max_layer_size,
            "maxImageSize" => self.max_image_size,
            "maxLayerEntries" => self.max_layer_entries,
            _ => self.max_layers,
        };
        LimitError {
            key,
            limit,
            what,
            file: self.file.clone(),
        }
    }
}

/// An image went over one of the caps.
#[derive(Debug, Clone)]
pub struct LimitError {
    /// The key in `image-limits.json`.
    pub key: &'static str,
    pub limit: u64,
    /// What went over it.
    pub what: String,
    pub file: PathBuf,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: over the image limit {} = {}; if the image is trusted, raise \"{}\" in {}",
            self.what,
            self.key,
            self.limit,
            self.key,
            self.file.display()
        )
    }
}

impl std::error::Error for LimitError {}

/// A reader that fails once more than `left` bytes came through it.
pub struct Capped<R> {
    inner: R,
    left: u64,
    err: LimitError,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, left: u64, err: LimitError) -> Self {
        Capped { inner, left, err }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // one byte more than allowed is enough to know the stream is too long
        let want = buf
            .len()
            .min(self.left.saturating_add(1).try_into().unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::other(self.err.clone()));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Most bytes a tar reader may take from the stream while it reads the
/// headers of one entry: its 512-byte header, a pax extended header, GNU
/// long names and a GNU sparse map. The tar crate keeps these in memory
/// whole, and they are legal at any size, so without a bound a few MB of
/// gzip could make podc allocate gigabytes. Real ones are far smaller
/// (Linux caps an xattr value at 64 KiB and a path at 4 KiB).
pub const MAX_ENTRY_HEADERS: u64 = 1 << 20;

/// A reader for a tar archive that fails once the headers of one entry
/// take more than [`MAX_ENTRY_HEADERS`] bytes. The bound is on while
/// [`HeaderBudget::next`] fetches an entry and off while the caller reads
/// the entry's contents, so the caller must consume each entry fully
/// ([`drain_entry`]) before it asks for the next one: what is left of an
/// entry would otherwise be skipped under the bound. Seeking (an archive
/// read with `entries_with_seek`) is not counted.
pub struct HeaderBudgeted<R> {
    inner: R,
    left: Rc<Cell<Option<u64>>>,
}

/// Switches the bound of a [`HeaderBudgeted`] reader on around each entry.
pub struct HeaderBudget {
    left: Rc<Cell<Option<u64>>>,
}

/// `inner` wrapped for a tar reader, and the handle that bounds it.
pub fn header_budgeted<R>(inner: R) -> (HeaderBudgeted<R>, HeaderBudget) {
    let left = Rc::new(Cell::new(None));
    (
        HeaderBudgeted {
            inner,
            left: left.clone(),
        },
        HeaderBudget { left },
    )
}

impl HeaderBudget {
    /// The next item of `entries` (a tar crate entry iterator over a
    /// [`HeaderBudgeted`] reader), with its headers bounded.
    pub fn next<I: Iterator>(&self, entries: &mut I) -> Option<I::Item> {
        self.left.set(Some(MAX_ENTRY_HEADERS));
        let item = entries.next();
        self.left.set(None);
        item
    }
}

/// Reads what is left of a tar entry, so the next one starts at a header.
pub fn drain_entry(e: &mut impl Read) -> io::Result<u64> {
    io::copy(e, &mut io::sink())
}

impl<R: Read> Read for HeaderBudgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.left.get() else {
            return self.inner.read(buf);
        };
        let want = buf
            .len()
            .min(left.saturating_add(1).try_into().unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > left {
            return Err(io::Error::other(format!(
                "the tar headers of one entry (pax records, GNU long names, sparse map) are longer than {MAX_ENTRY_HEADERS} bytes: rejected"
            )));
        }
        self.left.set(Some(left - n as u64));
        Ok(n)
    }
}

impl<R: io::Seek> io::Seek for HeaderBudgeted<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file() {
        let t = tempfile::tempdir().unwrap();
        let l = Limits::load(t.path()).unwrap();
        assert_eq!(l.max_layer_size, 8 << 30);
        assert_eq!(l.max_image_size, 16 << 30);
        assert_eq!(l.max_layer_entries, 1_000_000);
        assert_eq!(l.max_layers, 128);
        std::fs::write(
            t.path().join(LIMITS_FILE),
            br#"{"maxLayerSize": "4Mi", "maxImageSize": 100, "maxLayers": 2}"#,
        )
        .unwrap();
        let l = Limits::load(t.path()).unwrap();
        assert_eq!((l.max_layer_size, l.max_image_size), (4 << 20, 100));
        assert_eq!((l.max_layer_entries, l.max_layers), (1_000_000, 2));
        std::fs::write(t.path().join(LIMITS_FILE), br#"{"maxLayerSize": "lots"}"#).unwrap();
        assert!(format!("{:#}", Limits::load(t.path()).unwrap_err()).contains("not a size"));
        std::fs::write(t.path().join(LIMITS_FILE), br#"{"maxSize": 1}"#).unwrap();
        assert!(Limits::load(t.path()).is_err());
    }

    #[test]
    fn capped_reader_stops_past_the_cap() {
        let l = Limits::default();
        let mut ok = Capped::new(&[0u8; 10][..], 10, l.exceeded("maxLayerSize", "x".into()));
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 10);
        let mut over = Capped::new(&[0u8; 11][..], 10, l.exceeded("maxLayerSize", "x".into()));
        let e = io::copy(&mut over, &mut io::sink()).unwrap_err();
        assert!(e.to_string().contains("maxLayerSize"), "{e}");
    }

    #[test]
    fn long_names_are_bounded_per_entry() {
        let tar_of = |name_len: usize| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            h.set_mtime(0);
            let name = "n".repeat(name_len);
            b.append_data(&mut h, name, &b"x"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let first = |data: Vec<u8>| {
            let (r, budget) = header_budgeted(io::Cursor::new(data));
            let mut ar = tar::Archive::new(r);
            let mut entries = ar.entries().unwrap();
            let e = budget.next(&mut entries).unwrap();
            e.map(|e| e.path_bytes().len())
        };
        assert_eq!(first(tar_of(200 << 10)).unwrap(), 200 << 10);
        let e = first(tar_of(2 << 20)).unwrap_err();
        assert!(e.to_string().contains("tar headers of one entry"), "{e}");
    }
}
