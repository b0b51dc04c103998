//! Hostile layers: one name that changes type within a layer (directory,
//! symlink to a host path, hard link, regular file, whiteout, in every
//! order), metadata that would land after the change, and layers that try to
//! fill the disk. Host invariant checked after each: nothing outside the
//! store is created, changed, chmodded, chowned or touched.

mod image_support;

use image_support::*;
use podc::image::unpack::Compression;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One observable state of a host path (never followed).
#[derive(Debug, PartialEq, Eq, Clone)]
struct HostStat {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    size: u64,
    nlink: u64,
    xattrs: Vec<String>,
}

/// Everything below `dir`: path → state, so any write, chmod, chown, utimes
/// or xattr through a symlink of a layer shows up as a difference.
fn host_snapshot(dir: &Path) -> BTreeMap<PathBuf, HostStat> {
    let mut out = BTreeMap::new();
    let mut paths = vec![PathBuf::new()];
    paths.extend(tree(dir));
    for rel in paths {
        let p = dir.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else {
            "file"
        };
        let xattrs = xattr_names(&p);
        out.insert(
            rel,
            HostStat {
                kind,
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                size: m.size(),
                nlink: m.nlink(),
                xattrs,
            },
        );
    }
    out
}

fn xattr_names(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut buf).unwrap_or(0);
    buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// A "host": a directory outside the store, which layer symlinks point at.
struct Host {
    _t: tempfile::TempDir,
    base: PathBuf,
    dir: PathBuf,
}

impl Host {
    fn new() -> Host {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().to_path_buf();
        let dir = base.join("host");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("victim"), b"host file\n").unwrap();
        std::fs::create_dir_all(dir.join("sub/b")).unwrap();
        for (p, mode) in [("victim", 0o644), ("sub", 0o700), ("sub/b", 0o700)] {
            let p = dir.join(p);
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            let t = std::fs::FileTimes::new()
                .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
            std::fs::File::open(&p).unwrap().set_times(t).unwrap();
        }
        Host { _t: t, base, dir }
    }
    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).to_str().unwrap().to_string()
    }
    fn root(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }
}

/// The five things a name can be in a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum K {
    Dir,
    Symlink,
    Hardlink,
    Regular,
    Whiteout,
}

const KINDS: [K; 5] = [K::Dir, K::Symlink, K::Hardlink, K::Regular, K::Whiteout];

/// Every ordering of every subset of at least two kinds (320 of them).
fn orderings() -> Vec<Vec<K>> {
    fn go(prefix: &mut Vec<K>, out: &mut Vec<Vec<K>>) {
        if prefix.len() >= 2 {
            out.push(prefix.clone());
        }
        for k in KINDS {
            if !prefix.contains(&k) {
                prefix.push(k);
                go(prefix, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(&mut Vec::new(), &mut out);
    out
}

/// The entries that make `name` a `k`. Directories are setuid, world
/// writable and owned by 1234 (and get a child), so metadata that lands on
/// the wrong inode is visible; symlinks point at a host file or directory.
fn entries_for(k: K, name: &str, link_target: &str) -> Vec<Entry> {
    match k {
        K::Dir => vec![
            owned(dir(&format!("{name}/"), 0o4777), 1234, 1234),
            owned(dir(&format!("{name}/b/"), 0o4777), 1234, 1234),
        ],
        K::Symlink => vec![symlink(name, link_target)],
        K::Hardlink => vec![hardlink(name, &format!("t-{name}"))],
        K::Regular => vec![owned(file(name, 0o640, b"regular"), 4321, 4321)],
        K::Whiteout => vec![file(&format!(".wh.{name}"), 0o644, b"")],
    }
}

/// A layer holding one case per ordering, `c<i>`, each using `kinds(i)`.
/// Every case gets a hard link target `t-c<i>` first.
fn layer_entries(cases: &[(String, Vec<K>)], link_target: &dyn Fn(usize) -> String) -> Vec<Entry> {
    let mut v = vec![dir("./", 0o755)];
    for (name, _) in cases {
        v.push(file(&format!("t-{name}"), 0o600, b"link target"));
    }
    for (i, (name, kinds)) in cases.iter().enumerate() {
        for k in kinds {
            v.extend(entries_for(*k, name, &link_target(i)));
        }
    }
    v
}

/// Checks that `name` in the unpacked layer `diff` is what the last
/// non-whiteout kind made it, with that entry's own metadata.
fn check_final(diff: &Path, name: &str, kinds: &[K], link_target: &str) {
    let p = diff.join(name);
    let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{name} {kinds:?}: {e}"));
    let last = kinds.iter().rev().find(|k| **k != K::Whiteout);
    let what = format!("{name} {kinds:?}");
    match last {
        Some(K::Dir) => {
            assert!(m.is_dir(), "{what}");
            assert_eq!((m.mode() & 0o7777, m.uid()), (0o4777, 1234), "{what}");
            assert!(diff.join(name).join("b").is_dir(), "{what}");
        }
        Some(K::Symlink) => {
            assert!(m.file_type().is_symlink(), "{what}");
            assert_eq!(std::fs::read_link(&p).unwrap(), Path::new(link_target));
        }
        Some(K::Hardlink) => {
            let t = std::fs::symlink_metadata(diff.join(format!("t-{name}"))).unwrap();
            assert_eq!((m.ino(), m.mode() & 0o7777), (t.ino(), 0o600), "{what}");
        }
        Some(K::Regular) => {
            assert!(m.is_file(), "{what}");
            assert_eq!((m.mode() & 0o7777, m.uid()), (0o640, 4321), "{what}");
            assert_eq!(std::fs::read(&p).unwrap(), b"regular");
        }
        _ => {
            assert!(m.file_type().is_char_device() && m.rdev() == 0, "{what}");
        }
    }
}

fn diff_dir(root: &Path, l: &Layer) -> PathBuf {
    root.join("images/layers")
        .join(l.diff_id.hex())
        .join("diff")
}

/// A name that becomes a directory with mode 4777 and then a symlink to a
/// host file: the directory's deferred chmod went through the symlink and
/// made the host file setuid and world-writable (the reported bug). Also
/// through a symlinked parent (`a/b/` then `a` → host dir) and for the
/// implicit parent of `a/x`.
#[test]
fn dir_then_symlink_never_chmods_the_host() {
    if skip_unless_root("ownership and whiteouts") {
        return;
    }
    let host = Host::new();
    let before = host_snapshot(&host.dir);
    let entries = vec![
        dir("./", 0o755),
        dir("a/", 0o4777),
        symlink("a", &host.path("victim")),
        dir("d/", 0o755),
        owned(dir("d/b/", 0o4777), 1234, 1234),
        symlink("d", &host.path("sub")),
        file("i/x", 0o644, b"x"),
        symlink("i", &host.path("sub")),
    ];
    let img = TestImage::new(vec![layer(&entries, Compression::Gzip)], busybox_config());
    let archive = host.root("evil-docker.tar");
    write_docker_archive(&img, &archive, "evil/docker:1");
    let layout = host.root("evil-layout");
    write_oci_layout(&img, &layout, Some("evil/layout:1"));
    let rootfs = host.root("evil.tar");
    std::fs::write(&rootfs, layer_tar(&entries)).unwrap();
    for (i, src) in [&rootfs, &archive, &layout].into_iter().enumerate() {
        let root = host.root(&format!("root{i}"));
        run_ok(
            podc(&root)
                .args(["image", "import"])
                .arg(src)
                .args(["--name", "evil:1"]),
        );
        assert_eq!(host_snapshot(&host.dir), before, "import of {src:?}");
        let l = export_listing(&root, "evil:1");
        assert!(l.iter().any(|x| x.starts_with("a symlink")), "{l:?}");
        run_ok(podc(&root).args(["image", "check"]));
    }
    let m = std::fs::metadata(host.dir.join("victim")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o644);
}

/// Every ordering of directory / symlink / hard link / regular file /
/// whiteout for one name, in one layer and split over two layers, with the
/// symlinks pointing at a host file and at a host directory. Each import
/// succeeds; each name ends as its last entry made it, with that entry's
/// metadata; the host is untouched.
#[test]
fn every_ordering_of_one_name_keeps_the_host_untouched() {
    if skip_unless_root("ownership and whiteouts") {
        return;
    }
    let host = Host::new();
    let before = host_snapshot(&host.dir);
    let cases: Vec<(String, Vec<K>)> = orderings()
        .into_iter()
        .enumerate()
        .map(|(i, k)| (format!("c{i}"), k))
        .collect();
    assert_eq!(cases.len(), 320);
    let targets = [host.path("victim"), host.path("sub")];
    let target = |i: usize| targets[i % 2].clone();
    // one layer, as a rootfs tarball and as an OCI layout
    let one = layer(&layer_entries(&cases, &target), Compression::None);
    // two layers: the first half of each ordering below, the rest above
    let split = |first: bool| -> Vec<(String, Vec<K>)> {
        cases
            .iter()
            .map(|(n, k)| {
                let h = k.len() / 2;
                (
                    n.clone(),
                    if first {
                        k[..h].to_vec()
                    } else {
                        k[h..].to_vec()
                    },
                )
            })
            .collect()
    };
    let (lower, upper) = (split(true), split(false));
    let two = [
        layer(&layer_entries(&lower, &target), Compression::Gzip),
        layer(&layer_entries(&upper, &target), Compression::Zstd),
    ];
    let rootfs = host.root("one.tar");
    std::fs::write(&rootfs, &one.raw).unwrap();
    let r1 = host.root("root-one");
    run_ok(
        podc(&r1)
            .args(["image", "import"])
            .arg(&rootfs)
            .args(["--name", "one:1"]),
    );
    assert_eq!(host_snapshot(&host.dir), before, "one layer");
    for (i, (name, kinds)) in cases.iter().enumerate() {
        check_final(&diff_dir(&r1, &one), name, kinds, &target(i));
    }
    let img = TestImage::new(two.into_iter().collect(), busybox_config());
    let layout = host.root("two-layout");
    write_oci_layout(&img, &layout, Some("two:1"));
    let archive = host.root("two-docker.tar");
    write_docker_archive(&img, &archive, "two/docker:1");
    for (j, src) in [&layout, &archive].into_iter().enumerate() {
        let r = host.root(&format!("root-two-{j}"));
        run_ok(podc(&r).args(["image", "import"]).arg(src));
        assert_eq!(host_snapshot(&host.dir), before, "two layers from {src:?}");
        for (l, half) in img.layers.iter().zip([&lower, &upper]) {
            let diff = diff_dir(&r, l);
            for (i, (name, kinds)) in half.iter().enumerate() {
                if kinds.is_empty() {
                    continue;
                }
                check_final(&diff, name, kinds, &target(i));
            }
        }
        run_ok(podc(&r).args(["image", "check"]));
    }
}

/// Entries that reach through a symlink made earlier in the layer (after
/// the name changed type) are rejected with a clear error, and nothing on
/// the host changes.
#[test]
fn writes_through_a_replaced_name_are_rejected() {
    if skip_unless_root("ownership and whiteouts") {
        return;
    }
    let host = Host::new();
    let before = host_snapshot(&host.dir);
    let sub = host.path("sub");
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "child-after-dir-became-symlink",
            vec![
                dir("a/", 0o755),
                symlink("a", &sub),
                file("a/b/x", 0o644, b"x"),
            ],
            "through the symlink",
        ),
        (
            "dir-child-after-dir-became-symlink",
            vec![dir("a/", 0o755), symlink("a", &sub), dir("a/b/", 0o4777)],
            "through the symlink",
        ),
        (
            "opaque-under-symlink",
            vec![
                dir("a/", 0o755),
                symlink("a", &sub),
                file("a/.wh..wh..opq", 0o644, b""),
            ],
            "through the symlink",
        ),
        (
            "whiteout-under-symlink",
            vec![symlink("a", &sub), file("a/b/.wh.x", 0o644, b"")],
            "through the symlink",
        ),
        (
            "hardlink-to-host-through-replaced-dir",
            vec![
                dir("a/", 0o755),
                symlink("a", &host.path("")),
                hardlink("h", "a/victim"),
            ],
            "through the symlink",
        ),
        (
            "device-under-symlink",
            vec![
                symlink("a", &sub),
                Entry {
                    path: "a/null".into(),
                    kind: Kind::Char(1, 3),
                    mode: 0o666,
                    uid: 0,
                    gid: 0,
                    xattrs: vec![],
                },
            ],
            "through the symlink",
        ),
        (
            "regular-under-regular",
            vec![file("a", 0o644, b"x"), file("a/b", 0o644, b"x")],
            "is not a directory",
        ),
    ];
    for (name, entries, error) in cases {
        let root = host.root(&format!("root-{name}"));
        let f = host.root(&format!("{name}.tar"));
        std::fs::write(&f, layer_tar(&entries)).unwrap();
        let o = run_err(
            podc(&root)
                .args(["image", "import"])
                .arg(&f)
                .args(["--name", "x:1"]),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(error), "{name}: expected {error:?} in {err}");
        assert_eq!(host_snapshot(&host.dir), before, "{name}");
        assert!(names_in_ls(&root).is_empty(), "{name}");
        assert_eq!(
            std::fs::read_dir(root.join("images/tmp")).unwrap().count(),
            0
        );
    }
}

/// A registry on 127.0.0.1 that serves one image (no auth) to `podc image
/// pull --insecure`; returns its port.
fn serve_image(img: &TestImage, repo: &str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut files = std::collections::HashMap::new();
    files.insert(
        format!("/v2/{repo}/manifests/1"),
        (
            "application/vnd.oci.image.manifest.v1+json",
            img.manifest.clone(),
        ),
    );
    let blob = |d: &podc::image::Digest| format!("/v2/{repo}/blobs/{d}");
    files.insert(
        blob(&img.config_digest()),
        ("application/octet-stream", img.config.clone()),
    );
    for l in &img.layers {
        files.insert(
            blob(&l.digest),
            ("application/octet-stream", l.blob.clone()),
        );
    }
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let (status, ctype, body) = match files.get(&path) {
                Some((ct, b)) => ("200 OK", *ct, b.as_slice()),
                None => (
                    "404 Not Found",
                    "application/json",
                    &br#"{"errors":[]}"#[..],
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    port
}

/// The 4777 case through `podc image pull`: same code, same result.
#[test]
fn pull_never_chmods_the_host_either() {
    if skip_unless_root("ownership and whiteouts") {
        return;
    }
    let host = Host::new();
    let before = host_snapshot(&host.dir);
    let entries = vec![
        dir("./", 0o755),
        dir("a/", 0o4777),
        symlink("a", &host.path("victim")),
        dir("d/", 0o755),
        owned(dir("d/b/", 0o4777), 1234, 1234),
        symlink("d", &host.path("sub")),
    ];
    let img = TestImage::new(vec![layer(&entries, Compression::Gzip)], busybox_config());
    let port = serve_image(&img, "evil/pull");
    let root = host.root("root");
    let reference = format!("127.0.0.1:{port}/evil/pull:1");
    run_ok(podc(&root).args(["image", "pull", "--insecure", &reference]));
    assert_eq!(host_snapshot(&host.dir), before);
    let l = export_listing(&root, &reference);
    assert!(l.iter().any(|x| x.starts_with("a symlink")), "{l:?}");
}

// ---- limits: what an image may consume ----

/// Writes `<root>/image-limits.json`.
fn set_limits(root: &Path, json: &str) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("image-limits.json"), json).unwrap();
}

/// Bytes of disk used by everything below `dir`.
fn disk_usage(dir: &Path) -> u64 {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(tree(dir).into_iter().map(|p| dir.join(p)));
    paths
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// A store that refused an image is as it was: no image, no layer, no blob,
/// no staging left, and `podc image check` is clean.
fn assert_store_empty(root: &Path) {
    assert!(names_in_ls(root).is_empty());
    for d in ["images/layers", "images/blobs/sha256", "images/tmp"] {
        assert_eq!(std::fs::read_dir(root.join(d)).unwrap().count(), 0, "{d}");
    }
    run_ok(podc(root).args(["image", "check"]));
    assert!(disk_usage(&root.join("images")) < 1 << 20);
}

/// A tar stream of one regular file `zeros` of `size` bytes of zeros, gzip
/// compressed as concatenated members (podc reads multi-member gzip): the
/// 16 MiB zero member is compressed once and repeated, so a 2 GiB bomb is
/// a few MB and built in a moment, never stored uncompressed.
fn gzip_bomb(name: &str, size: u64) -> Vec<u8> {
    const CHUNK: u64 = 16 << 20;
    assert_eq!(size % CHUNK, 0);
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = gz(h.as_bytes());
    let zeros = gz(&vec![0u8; CHUNK as usize]);
    for _ in 0..size / CHUNK {
        out.extend_from_slice(&zeros);
    }
    out.extend(gz(&[0u8; 1024]));
    out
}

/// A layer of an image whose diffID is not computed (the bomb is refused
/// before the diffID would be checked).
fn bomb_layer(blob: Vec<u8>) -> Layer {
    Layer {
        digest: podc::image::Digest::of_bytes(&blob),
        diff_id: podc::image::Digest::of_bytes(b"not checked"),
        media_type: Compression::Gzip.layer_media_type(),
        raw: Vec::new(),
        blob,
    }
}

const SMALL: &str =
    r#"{"maxLayerSize": "4Mi", "maxImageSize": "6Mi", "maxLayerEntries": 1000, "maxLayers": 3}"#;

fn assert_limit_error(o: &std::process::Output, key: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("over the image limit {key} = "))
            && err.contains("image-limits.json"),
        "expected {key} in {err}"
    );
    assert_eq!(o.status.code(), Some(1), "{err}");
}

/// 2 GiB of zeros in ~2 MB of gzip, as a rootfs tarball, in an OCI layout
/// and from a registry: each stops at the 4 MiB cap with an error naming
/// it, and leaves the store empty.
#[test]
fn gzip_bomb_stops_at_the_layer_cap() {
    let t = tempfile::tempdir().unwrap();
    let blob = gzip_bomb("zeros", 2 << 30);
    assert!(blob.len() < 8 << 20, "{}", blob.len());
    let f = t.path().join("bomb.tar.gz");
    std::fs::write(&f, &blob).unwrap();
    let img = TestImage::new(vec![bomb_layer(blob)], busybox_config());
    let layout = t.path().join("layout");
    write_oci_layout(&img, &layout, Some("bomb:1"));
    let port = serve_image(&img, "bomb/pull");
    let reference = format!("127.0.0.1:{port}/bomb/pull:1");
    let runs: Vec<(&str, Vec<std::ffi::OsString>)> = vec![
        (
            "rootfs",
            vec![
                "import".into(),
                f.clone().into(),
                "--name".into(),
                "b:1".into(),
            ],
        ),
        ("layout", vec!["import".into(), layout.clone().into()]),
        (
            "pull",
            vec!["pull".into(), "--insecure".into(), reference.into()],
        ),
    ];
    for (what, args) in runs {
        let root = t.path().join(format!("root-{what}"));
        set_limits(&root, SMALL);
        let o = run_err(podc(&root).arg("image").args(&args));
        assert_limit_error(&o, "maxLayerSize");
        assert_store_empty(&root);
    }
}

/// A compressed image archive is staged before its layers are unpacked:
/// its decompressed size is capped too.
#[test]
fn compressed_archive_bomb_stops_at_the_image_cap() {
    let t = tempfile::tempdir().unwrap();
    let mut inner = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_mtime(0);
    inner.append_data(&mut h, "oci-layout", &b"{}"[..]).unwrap();
    let mut raw = inner.into_inner().unwrap();
    // the bomb member follows: drop the end-of-archive blocks of `inner`
    // and let the bomb's own stream end the archive
    raw.truncate(1024);
    let mut blob = compress(&raw, Compression::Gzip);
    blob.extend(gzip_bomb(
        &format!("blobs/sha256/{}", "0".repeat(64)),
        2 << 30,
    ));
    let f = t.path().join("archive.tar.gz");
    std::fs::write(&f, &blob).unwrap();
    let root = t.path().join("root");
    set_limits(&root, r#"{"maxImageSize": "4Mi", "maxLayerEntries": 100}"#);
    let o = run_err(podc(&root).args(["image", "import"]).arg(&f));
    assert_limit_error(&o, "maxImageSize");
    assert_store_empty(&root);
}

/// Bytes actually written are counted, whatever the headers say: a GNU
/// sparse entry of 1 byte of data and a 64 MiB hole (which unpacks as 64
/// MiB of zeros) is refused, and no more than the cap reaches the disk.
#[test]
fn sparse_entry_counts_what_it_writes() {
    use podc::image::limits::Limits;
    use podc::image::unpack::{unpack_layer, LayerCaps};
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(1);
    {
        let g = h.as_gnu_mut().unwrap();
        g.sparse[0].set_offset(64 << 20);
        g.sparse[0].set_length(1);
        g.set_real_size((64 << 20) + 1);
    }
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let limits = Limits {
        max_layer_size: 4 << 20,
        ..Limits::default()
    };
    let t = tempfile::tempdir().unwrap();
    let caps = LayerCaps {
        limits: &limits,
        image_left: u64::MAX,
    };
    let e = unpack_layer(&data[..], t.path(), &caps).unwrap_err();
    assert!(format!("{e:#}").contains("maxLayerSize"), "{e:#}");
    let written = std::fs::metadata(t.path().join("sparse")).unwrap().len();
    assert!(written <= 4 << 20, "{written}");
    // the same entry under a cap it fits in unpacks whole
    let t2 = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let caps = LayerCaps {
        limits: &limits,
        image_left: u64::MAX,
    };
    let s = unpack_layer(&data[..], t2.path(), &caps).unwrap();
    assert_eq!(s.size, (64 << 20) + 1);
}

/// Hard links add no bytes; the image cap adds the layers up.
#[test]
fn hardlinks_do_not_count_and_layers_add_up() {
    let t = tempfile::tempdir().unwrap();
    let big = noise(3 << 20, 7);
    let mut entries = vec![dir("./", 0o755), file("big", 0o644, &big)];
    for i in 0..20 {
        entries.push(hardlink(&format!("h{i}"), "big"));
    }
    let f = t.path().join("links.tar");
    std::fs::write(&f, layer_tar(&entries)).unwrap();
    let root = t.path().join("root");
    set_limits(&root, SMALL);
    run_ok(
        podc(&root)
            .args(["image", "import"])
            .arg(&f)
            .args(["--name", "links:1"]),
    );
    // two layers of 3 MiB each: under maxLayerSize, over maxImageSize (6 MiB)
    let two = TestImage::new(
        vec![
            layer(&[file("a", 0o644, &noise(3 << 20, 1))], Compression::Gzip),
            layer(
                &[file("b", 0o644, &noise((3 << 20) + 1, 2))],
                Compression::Gzip,
            ),
        ],
        busybox_config(),
    );
    let layout = t.path().join("two");
    write_oci_layout(&two, &layout, Some("two:1"));
    let before = tree(&root.join("images"));
    let o = run_err(podc(&root).args(["image", "import"]).arg(&layout));
    assert_limit_error(&o, "maxImageSize");
    assert_eq!(tree(&root.join("images")), before);
    assert_eq!(names_in_ls(&root).len(), 1);
}

/// `maxLayerEntries` entries pass, one more fails; `maxLayers` layers pass,
/// one more fails (before anything is unpacked).
#[test]
fn entry_and_layer_counts_are_capped() {
    let t = tempfile::tempdir().unwrap();
    let many =
        |n: usize| -> Vec<Entry> { (0..n).map(|i| file(&format!("f{i}"), 0o644, b"")).collect() };
    let root = t.path().join("root");
    set_limits(&root, SMALL);
    for (n, ok) in [(1000, true), (1001, false)] {
        let f = t.path().join(format!("many-{n}.tar"));
        std::fs::write(&f, layer_tar(&many(n))).unwrap();
        let mut c = podc(&root);
        c.args(["image", "import"])
            .arg(&f)
            .args(["--name", &format!("many:{n}")]);
        if ok {
            run_ok(&mut c);
        } else {
            assert_limit_error(&run_err(&mut c), "maxLayerEntries");
        }
    }
    for (n, ok) in [(3, true), (4, false)] {
        let layers = (0..n)
            .map(|i| layer(&[file(&format!("l{i}"), 0o644, b"x")], Compression::None))
            .collect();
        let img = TestImage::new(layers, busybox_config());
        let layout = t.path().join(format!("layers-{n}"));
        write_oci_layout(&img, &layout, Some(&format!("layers:{n}")));
        let mut c = podc(&root);
        c.args(["image", "import"]).arg(&layout);
        if ok {
            run_ok(&mut c);
        } else {
            let before = tree(&root.join("images"));
            assert_limit_error(&run_err(&mut c), "maxLayers");
            assert_eq!(tree(&root.join("images")), before);
        }
    }
    assert_eq!(names_in_ls(&root).len(), 2);
    assert_eq!(
        std::fs::read_dir(root.join("images/tmp")).unwrap().count(),
        0
    );
}

/// The defaults are what docs/images.md says they are.
#[test]
fn default_limits_are_the_documented_ones() {
    let t = tempfile::tempdir().unwrap();
    let l = podc::image::limits::Limits::load(t.path()).unwrap();
    assert_eq!(
        (
            l.max_layer_size,
            l.max_image_size,
            l.max_layer_entries,
            l.max_layers
        ),
        (8 << 30, 16 << 30, 1_000_000, 128)
    );
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/images.md")).unwrap();
    for row in [
        "| `maxLayerSize` | `8Gi` |",
        "| `maxImageSize` | `16Gi` |",
        "| `maxLayerEntries` | `1000000` |",
        "| `maxLayers` | `128` |",
    ] {
        assert!(doc.contains(row), "docs/images.md lacks {row:?}");
    }
}

// ---- memory: what tar keeps in memory for one entry ----

/// A gzip tar stream (concatenated members) of one pax extended header
/// whose single `comment` record is 512 MiB long, followed by a small file
/// `hello` and the end of the archive. tar readers keep a pax header (like
/// a GNU long name) in memory whole; the record itself is legal, so only a
/// bound on its size stops it.
fn pax_header_bomb() -> Vec<u8> {
    const CHUNK: usize = 16 << 20;
    const SIZE: usize = 32 * CHUNK;
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/hello").unwrap();
    h.set_size(SIZE as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_cksum();
    let prefix = format!("{SIZE} comment=");
    let mut first = prefix.clone().into_bytes();
    first.resize(CHUNK, b'a');
    let mut out = gz(h.as_bytes());
    out.extend(gz(&first));
    let full = gz(&vec![b'a'; CHUNK]);
    for _ in 0..30 {
        out.extend_from_slice(&full);
    }
    let mut last = vec![b'a'; CHUNK - 1];
    last.push(b'\n');
    let mut tail = tar::Builder::new(Vec::new());
    let mut f = tar::Header::new_ustar();
    f.set_size(5);
    f.set_mode(0o644);
    f.set_uid(0);
    f.set_gid(0);
    f.set_mtime(0);
    tail.append_data(&mut f, "hello", &b"hello"[..]).unwrap();
    last.extend(tail.into_inner().unwrap());
    out.extend(gz(&last));
    out
}

/// `podc image ARGS...` with its peak RSS in kB (via /usr/bin/time).
fn image_peak_rss(root: &Path, args: &[&std::ffi::OsStr]) -> (std::process::Output, u64) {
    let o = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_podc"))
        .arg("--root")
        .arg(root)
        .arg("image")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let rss = err.lines().last().and_then(|l| l.trim().parse().ok());
    (
        o,
        rss.unwrap_or_else(|| panic!("no RSS from /usr/bin/time in {err}")),
    )
}

/// A 512 MiB pax header in a few hundred kB of gzip, as a rootfs tarball
/// (read by the archive scan) and as a layer of an OCI layout (read by the
/// layer unpacker): both are refused with an error naming the header, and
/// podc's memory stays far below the header's size.
#[test]
fn huge_pax_header_is_refused_in_bounded_memory() {
    let t = tempfile::tempdir().unwrap();
    let blob = pax_header_bomb();
    assert!(blob.len() < 8 << 20, "{}", blob.len());
    let f = t.path().join("pax.tar.gz");
    std::fs::write(&f, &blob).unwrap();
    let img = TestImage::new(vec![bomb_layer(blob)], busybox_config());
    let layout = t.path().join("layout");
    write_oci_layout(&img, &layout, Some("pax:1"));
    let runs: [(&str, Vec<&std::ffi::OsStr>); 2] = [
        (
            "rootfs",
            vec![
                "import".as_ref(),
                f.as_os_str(),
                "--name".as_ref(),
                "p:1".as_ref(),
            ],
        ),
        ("layout", vec!["import".as_ref(), layout.as_os_str()]),
    ];
    for (what, args) in runs {
        let root = t.path().join(format!("root-{what}"));
        let (o, rss) = image_peak_rss(&root, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}: imported: {err}");
        assert!(err.contains("tar headers of one entry"), "{what}: {err}");
        assert!(rss < 128 << 10, "{what}: peak RSS {rss} kB");
        assert_store_empty(&root);
    }
}

/// An entry path longer than PATH_MAX (here 2,500 nested directories in a
/// GNU long name) names nothing a process in the container could open, and
/// unpacking work grows with its square (every parent is opened, recorded
/// and reopened from the layer root), as does walking the tree later
/// (export recurses per directory): it is refused, naming the length.
#[test]
fn entry_paths_longer_than_path_max_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let deep = format!("{}f", "d/".repeat(2500));
    let header = |size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    for what in ["file", "link"] {
        let mut b = tar::Builder::new(Vec::new());
        if what == "file" {
            b.append_data(&mut header(1), &deep, &b"x"[..]).unwrap();
        } else {
            b.append_data(&mut header(1), "f", &b"x"[..]).unwrap();
            let mut h = header(0);
            h.set_entry_type(tar::EntryType::Link);
            b.append_link(&mut h, "l", &deep).unwrap();
        }
        let raw = b.into_inner().unwrap();
        let blob = compress(&raw, Compression::Gzip);
        let l = Layer {
            digest: podc::image::Digest::of_bytes(&blob),
            diff_id: podc::image::Digest::of_bytes(&raw),
            media_type: Compression::Gzip.layer_media_type(),
            raw,
            blob,
        };
        let img = TestImage::new(vec![l], busybox_config());
        let layout = t.path().join(format!("layout-{what}"));
        write_oci_layout(&img, &layout, Some("deep:1"));
        let root = t.path().join(format!("root-{what}"));
        let o = run_err(podc(&root).args(["image", "import"]).arg(&layout));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("5001 bytes long"), "{what}: {err}");
        assert_store_empty(&root);
    }
}

/// maxLayerEntries bounds the inodes a layer makes: a directory that an
/// entry's path implies, without an entry of its own, is made all the
/// same, so it counts. One file 1,500 directories deep (a 3 KB name) is
/// refused under a cap of 1,000 entries, and nothing of it is left.
#[test]
fn implied_directories_count_as_entries() {
    let t = tempfile::tempdir().unwrap();
    let deep = format!("{}f", "d/".repeat(1500));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    let f = t.path().join("deep.tar");
    std::fs::write(&f, b.into_inner().unwrap()).unwrap();
    let root = t.path().join("root");
    set_limits(&root, SMALL);
    let o = run_err(
        podc(&root)
            .args(["image", "import"])
            .arg(&f)
            .args(["--name", "deep:1"]),
    );
    assert_limit_error(&o, "maxLayerEntries");
    assert_store_empty(&root);
}

/// Directory metadata waits for the end of the layer; what it costs must
/// grow with the number of directories, not with their depth times their
/// number. 20 files, each 1,900 directories deep below its own top
/// directory (38,000 directories, 76 KB of names), unpack with their
/// metadata applied, owner, mode and time, on the deepest and the top
/// directories alike, in the time making the directories takes (when
/// each directory's metadata was applied by reopening it from the layer
/// root, this took 15 times as long: minutes).
#[test]
fn deep_directories_cost_no_more_than_many() {
    let t = tempfile::tempdir().unwrap();
    let header = |kind: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h
    };
    // short enough that the test can still stat the deepest by its path
    let chain = format!("{}d", "d/".repeat(1899));
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..20 {
        let f = format!("c{i}/{chain}/f");
        b.append_data(
            &mut header(tar::EntryType::Regular, 1, 0o644),
            &f,
            &b"x"[..],
        )
        .unwrap();
        let d = format!("c{i}/{chain}/");
        let mut h = header(tar::EntryType::Directory, 0, 0o710);
        b.append_data(&mut h, &d, std::io::empty()).unwrap();
        let mut h = header(tar::EntryType::Directory, 0, 0o750);
        b.append_data(&mut h, format!("c{i}/"), std::io::empty())
            .unwrap();
    }
    let f = t.path().join("deep.tar");
    std::fs::write(&f, b.into_inner().unwrap()).unwrap();
    let root = t.path().join("root");
    let started = std::time::Instant::now();
    run_ok(
        podc(&root)
            .args(["image", "import"])
            .arg(&f)
            .args(["--name", "deep:1"]),
    );
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    let layers = root.join("images/layers");
    let layer = std::fs::read_dir(&layers).unwrap().next().unwrap().unwrap();
    let diff = layer.path().join("diff");
    for i in [0, 19] {
        let top = diff.join(format!("c{i}"));
        let m = std::fs::symlink_metadata(&top).unwrap();
        assert_eq!((m.mode() & 0o7777, m.mtime()), (0o750, 1_000_000));
        let m = std::fs::symlink_metadata(top.join(&chain)).unwrap();
        assert_eq!((m.mode() & 0o7777, m.mtime()), (0o710, 1_000_000));
        let m = std::fs::symlink_metadata(top.join("d/d")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o755);
    }
}
