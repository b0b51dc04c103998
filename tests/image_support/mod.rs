//! Test images built from Debian's busybox-static, written with the `tar`
//! crate in every format `podc image import` reads.
#![allow(dead_code)]

use podc::image::unpack::Compression;
use podc::image::Digest;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BUSYBOX: &str = "/bin/busybox";

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Says why a test is skipped, on the real stderr (not captured by the
/// test harness, so the reason shows in a normal `cargo test` run). With
/// `PODC_REQUIRE_SYSTEM_TESTS=1` (set by `.ci/run`) a skip is a failure: a
/// missing package or privilege must not pass as green.
pub fn skip(why: &str) {
    use std::io::Write;
    if std::env::var_os("PODC_REQUIRE_SYSTEM_TESTS").is_some_and(|v| v != "0") {
        panic!("PODC_REQUIRE_SYSTEM_TESTS is set, but this test would be skipped: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// Skips a test (returns true) when not root, saying why.
pub fn skip_unless_root(what: &str) -> bool {
    if !is_root() {
        skip(&format!(
            "{what} needs root (whiteouts are device nodes, opaque dirs trusted.* xattrs)"
        ));
        return true;
    }
    false
}

pub fn busybox() -> Vec<u8> {
    std::fs::read(BUSYBOX).expect("busybox-static is installed (.ci/image-deps)")
}

#[derive(Clone, Debug)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    Hardlink(String),
    Char(u32, u32),
    Fifo,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub fn dir(path: &str, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind: Kind::Dir,
        mode,
        uid: 0,
        gid: 0,
        xattrs: vec![],
    }
}
pub fn file(path: &str, mode: u32, data: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        kind: Kind::File(data.to_vec()),
        mode,
        uid: 0,
        gid: 0,
        xattrs: vec![],
    }
}
pub fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: Kind::Symlink(target.into()),
        mode: 0o777,
        uid: 0,
        gid: 0,
        xattrs: vec![],
    }
}
pub fn hardlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: Kind::Hardlink(target.into()),
        mode: 0o644,
        uid: 0,
        gid: 0,
        xattrs: vec![],
    }
}
pub fn owned(mut e: Entry, uid: u64, gid: u64) -> Entry {
    e.uid = uid;
    e.gid = gid;
    e
}

/// Writes `name` into the header's raw name field, bypassing the tar crate's
/// path checks (for malicious test layers).
fn raw_name(h: &mut tar::Header, name: &str) {
    let n = &mut h.as_old_mut().name;
    n.fill(0);
    n[..name.len()].copy_from_slice(name.as_bytes());
}
fn raw_link(h: &mut tar::Header, name: &str) {
    let n = &mut h.as_old_mut().linkname;
    n.fill(0);
    n[..name.len()].copy_from_slice(name.as_bytes());
}

/// An uncompressed layer tarball. Paths are written raw, so tests can
/// build layers with `..` or absolute names.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.xattrs.is_empty() {
            let ext: Vec<(String, &[u8])> = e
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            b.append_pax_extensions(ext.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        let data: &[u8] = match &e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                d
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                raw_link(&mut h, t);
                &[]
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                raw_link(&mut h, t);
                &[]
            }
            Kind::Char(ma, mi) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
                &[]
            }
            Kind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                &[]
            }
        };
        assert!(e.path.len() < 100, "test paths stay short");
        raw_name(&mut h, &e.path);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: &'static str,
    pub raw: Vec<u8>,
}

pub fn layer(entries: &[Entry], c: Compression) -> Layer {
    let raw = layer_tar(entries);
    let blob = compress(&raw, c);
    Layer {
        digest: Digest::of_bytes(&blob),
        diff_id: Digest::of_bytes(&raw),
        blob,
        media_type: c.layer_media_type(),
        raw,
    }
}

pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    pub fn new(layers: Vec<Layer>, config: serde_json::Value) -> TestImage {
        let mut config = config;
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>()});
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of_bytes(&config).as_str(), "size": config.len()},
            "layers": layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest.as_str(), "size": l.blob.len()})).collect::<Vec<_>>(),
        });
        TestImage {
            layers,
            config,
            manifest: serde_json::to_vec(&manifest).unwrap(),
        }
    }
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.manifest)
    }
    pub fn config_digest(&self) -> Digest {
        Digest::of_bytes(&self.config)
    }
}

pub fn host_arch() -> String {
    podc::image::import::host_platform().architecture
}

pub fn busybox_config() -> serde_json::Value {
    serde_json::json!({
        "created": "2026-01-02T03:04:05Z",
        "architecture": host_arch(),
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hi"],
            "Env": ["PATH=/usr/local/bin:/bin", "GREETING=hi"],
            "WorkingDir": "/opt",
            "User": "1000:1000",
            "StopSignal": "SIGQUIT"
        }
    })
}

pub const PASSWD1: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n";
pub const PASSWD2: &[u8] = b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n";
pub const HELLO: &[u8] = b"#!/bin/sh\necho hello\n";

/// `security.capability` granting cap_net_bind_service (v2, effective).
pub const CAP_NET_BIND: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// A root-owned binary with a file capability (chown would drop it).
pub fn capped() -> Entry {
    let mut e = file("usr/bin/capped", 0o755, b"#!/bin/sh\n");
    e.xattrs
        .push(("security.capability".into(), CAP_NET_BIND.to_vec()));
    e
}

/// Layer entries of the three-layer busybox image:
/// 1. a busybox rootfs (symlink, hard link, setuid, owned dir, device, xattr);
/// 2. whiteout of etc/old.conf, opaque opt/data, changed etc/passwd;
/// 3. whiteout of the var directory, a new script.
pub fn busybox_layers() -> Vec<Vec<Entry>> {
    let mut x = file("etc/xattr-file", 0o644, b"x\n");
    x.xattrs.push(("user.podc.test".into(), b"yes".to_vec()));
    let l1 = vec![
        dir("./", 0o755),
        dir("bin/", 0o755),
        file("bin/busybox", 0o755, &busybox()),
        symlink("bin/sh", "busybox"),
        hardlink("bin/ls", "bin/busybox"),
        dir("dev/", 0o755),
        Entry {
            path: "dev/null".into(),
            kind: Kind::Char(1, 3),
            mode: 0o666,
            uid: 0,
            gid: 0,
            xattrs: vec![],
        },
        Entry {
            path: "dev/fifo".into(),
            kind: Kind::Fifo,
            mode: 0o600,
            uid: 0,
            gid: 0,
            xattrs: vec![],
        },
        dir("etc/", 0o755),
        file("etc/passwd", 0o644, PASSWD1),
        file("etc/old.conf", 0o644, b"old\n"),
        x,
        owned(dir("home/", 0o755), 0, 0),
        owned(dir("home/user/", 0o700), 1000, 1000),
        owned(file("home/user/file", 0o600, b"mine\n"), 1000, 1000),
        dir("opt/", 0o755),
        dir("opt/data/", 0o755),
        file("opt/data/a", 0o644, b"a\n"),
        file("opt/data/b", 0o644, b"b\n"),
        dir("tmp/", 0o1777),
        dir("usr/", 0o755),
        dir("usr/bin/", 0o755),
        file("usr/bin/su-tool", 0o4755, b"#!/bin/sh\nid\n"),
        capped(),
        dir("var/", 0o755),
        dir("var/cache/", 0o755),
        file("var/cache/junk", 0o644, b"junk\n"),
    ];
    let l2 = vec![
        file("etc/.wh.old.conf", 0o644, b""),
        file("etc/passwd", 0o644, PASSWD2),
        file("etc/motd", 0o644, b"hello\n"),
        file("opt/data/.wh..wh..opq", 0o644, b""),
        file("opt/data/c", 0o644, b"c\n"),
    ];
    let l3 = vec![
        file(".wh.var", 0o644, b""),
        dir("usr/", 0o755),
        dir("usr/local/", 0o755),
        dir("usr/local/bin/", 0o755),
        file("usr/local/bin/hello", 0o755, HELLO),
    ];
    vec![l1, l2, l3]
}

/// The multi-layer test image: gzip, zstd and uncompressed layers.
pub fn busybox_image() -> TestImage {
    let ls = busybox_layers();
    let comps = [Compression::Gzip, Compression::Zstd, Compression::None];
    TestImage::new(
        ls.iter().zip(comps).map(|(l, c)| layer(l, c)).collect(),
        busybox_config(),
    )
}

fn sha(data: &[u8]) -> String {
    Digest::of_bytes(data).short().to_string()
}

/// The flattened tree the busybox image must export to, in the format of
/// [`tar_listing`].
pub fn busybox_expected() -> Vec<String> {
    let bb = sha(&busybox());
    let mut v = vec![
        "./ dir 755 0:0".to_string(),
        "bin dir 755 0:0".into(),
        format!("bin/busybox file 755 0:0 {bb}"),
        "bin/ls link 755 0:0 => bin/busybox".into(),
        "bin/sh symlink 777 0:0 -> busybox".into(),
        "dev dir 755 0:0".into(),
        "dev/fifo fifo 600 0:0".into(),
        "dev/null char 666 0:0 1,3".into(),
        "etc dir 755 0:0".into(),
        format!("etc/motd file 644 0:0 {}", sha(b"hello\n")),
        format!("etc/passwd file 644 0:0 {}", sha(PASSWD2)),
        format!(
            "etc/xattr-file file 644 0:0 {} user.podc.test=yes",
            sha(b"x\n")
        ),
        "home dir 755 0:0".into(),
        "home/user dir 700 1000:1000".into(),
        format!("home/user/file file 600 1000:1000 {}", sha(b"mine\n")),
        "opt dir 755 0:0".into(),
        "opt/data dir 755 0:0".into(),
        format!("opt/data/c file 644 0:0 {}", sha(b"c\n")),
        "tmp dir 1777 0:0".into(),
        "usr dir 755 0:0".into(),
        "usr/bin dir 755 0:0".into(),
        format!(
            "usr/bin/capped file 755 0:0 {} security.capability={}",
            sha(b"#!/bin/sh\n"),
            xattr_value(&CAP_NET_BIND)
        ),
        format!("usr/bin/su-tool file 4755 0:0 {}", sha(b"#!/bin/sh\nid\n")),
        "usr/local dir 755 0:0".into(),
        "usr/local/bin dir 755 0:0".into(),
        format!("usr/local/bin/hello file 755 0:0 {}", sha(HELLO)),
    ];
    v.sort();
    v
}

/// Text for printable values, hex otherwise.
pub fn xattr_value(v: &[u8]) -> String {
    if v.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(v).into_owned()
    } else {
        v.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One line per entry: `path type mode uid:gid [content sha|-> target|=> link|dev] [xattrs]`,
/// sorted.
pub fn tar_listing(data: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(data);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path_bytes())
            .trim_end_matches('/')
            .to_string();
        let path = if path == "." || path.is_empty() {
            "./".to_string()
        } else {
            path.trim_start_matches("./").to_string()
        };
        let h = e.header().clone();
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                if let Some(k) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push(format!("{k}={}", xattr_value(x.value_bytes())));
                }
            }
        }
        let mode = h.mode().unwrap() & 0o7777;
        let own = format!("{}:{}", h.uid().unwrap(), h.gid().unwrap());
        let (kind, extra) = match h.entry_type() {
            tar::EntryType::Directory => ("dir", String::new()),
            tar::EntryType::Regular => {
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                ("file", sha(&d))
            }
            tar::EntryType::Symlink => (
                "symlink",
                format!(
                    "-> {}",
                    String::from_utf8_lossy(&e.link_name_bytes().unwrap())
                ),
            ),
            tar::EntryType::Link => (
                "link",
                format!(
                    "=> {}",
                    String::from_utf8_lossy(&e.link_name_bytes().unwrap()).trim_start_matches("./")
                ),
            ),
            tar::EntryType::Char => (
                "char",
                format!(
                    "{},{}",
                    h.device_major().unwrap().unwrap(),
                    h.device_minor().unwrap().unwrap()
                ),
            ),
            tar::EntryType::Block => (
                "block",
                format!(
                    "{},{}",
                    h.device_major().unwrap().unwrap(),
                    h.device_minor().unwrap().unwrap()
                ),
            ),
            tar::EntryType::Fifo => ("fifo", String::new()),
            t => panic!("unexpected entry type {t:?}"),
        };
        let mut line = format!("{path} {kind} {mode:o} {own}");
        if !extra.is_empty() {
            line.push(' ');
            line.push_str(&extra);
        }
        for x in xattrs {
            line.push(' ');
            line.push_str(&x);
        }
        out.push(line);
    }
    out.sort();
    out
}

fn write_blob(dir: &Path, data: &[u8]) -> Digest {
    let d = Digest::of_bytes(data);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.hex()), data).unwrap();
    d
}

/// Writes an OCI image layout; `ref_name` goes in the index annotation.
pub fn write_oci_layout(img: &TestImage, dir: &Path, ref_name: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    write_blob(dir, &img.config);
    for l in &img.layers {
        write_blob(dir, &l.blob);
    }
    let md = write_blob(dir, &img.manifest);
    let mut desc = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.as_str(), "size": img.manifest.len()});
    if let Some(r) = ref_name {
        desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": r});
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Writes a multi-arch layout: a nested index with `img` for the host and
/// `other` for another architecture. Returns the nested index digest.
pub fn write_oci_layout_multiarch(
    img: &TestImage,
    other: &TestImage,
    other_arch: &str,
    dir: &Path,
    ref_name: &str,
) -> Digest {
    write_oci_layout(other, dir, None);
    write_oci_layout(img, dir, None);
    let d = |t: &TestImage, arch: &str| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": t.digest().as_str(), "size": t.manifest.len(), "platform": {"architecture": arch, "os": "linux"}});
    let inner = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [d(other, other_arch), d(img, &host_arch())]});
    let inner = serde_json::to_vec(&inner).unwrap();
    let id = write_blob(dir, &inner);
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id.as_str(), "size": inner.len(), "annotations": {"org.opencontainers.image.ref.name": ref_name}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    id
}

/// Tars a directory (files and dirs) with the tar crate.
pub fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

pub fn write_oci_archive(img: &TestImage, out: &Path, ref_name: Option<&str>) {
    let t = tempfile::tempdir().unwrap();
    write_oci_layout(img, t.path(), ref_name);
    tar_dir(t.path(), out);
}

/// A classic `docker save` archive: manifest.json, `<id>.json` config and
/// uncompressed `<id>/layer.tar` layers.
pub fn write_docker_archive(img: &TestImage, out: &Path, repo_tag: &str) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    let cfg_name = format!("{}.json", img.config_digest().hex());
    add(&cfg_name, &img.config);
    let mut layers = Vec::new();
    for l in &img.layers {
        let id = l.diff_id.hex().to_string();
        add(&format!("{id}/layer.tar"), &l.raw);
        add(&format!("{id}/VERSION"), b"1.0");
        layers.push(format!("{id}/layer.tar"));
    }
    let m = serde_json::json!([{"Config": cfg_name, "RepoTags": [repo_tag], "Layers": layers}]);
    add("manifest.json", &serde_json::to_vec(&m).unwrap());
    b.finish().unwrap();
}

/// The flattened busybox tree as one plain rootfs tarball (no whiteouts).
pub fn busybox_rootfs_entries() -> Vec<Entry> {
    let mut x = file("etc/xattr-file", 0o644, b"x\n");
    x.xattrs.push(("user.podc.test".into(), b"yes".to_vec()));
    vec![
        dir("./", 0o755),
        dir("bin/", 0o755),
        file("bin/busybox", 0o755, &busybox()),
        hardlink("bin/ls", "bin/busybox"),
        symlink("bin/sh", "busybox"),
        dir("dev/", 0o755),
        Entry {
            path: "dev/fifo".into(),
            kind: Kind::Fifo,
            mode: 0o600,
            uid: 0,
            gid: 0,
            xattrs: vec![],
        },
        Entry {
            path: "dev/null".into(),
            kind: Kind::Char(1, 3),
            mode: 0o666,
            uid: 0,
            gid: 0,
            xattrs: vec![],
        },
        dir("etc/", 0o755),
        file("etc/motd", 0o644, b"hello\n"),
        file("etc/passwd", 0o644, PASSWD2),
        x,
        dir("home/", 0o755),
        owned(dir("home/user/", 0o700), 1000, 1000),
        owned(file("home/user/file", 0o600, b"mine\n"), 1000, 1000),
        dir("opt/", 0o755),
        dir("opt/data/", 0o755),
        file("opt/data/c", 0o644, b"c\n"),
        dir("tmp/", 0o1777),
        dir("usr/", 0o755),
        dir("usr/bin/", 0o755),
        file("usr/bin/su-tool", 0o4755, b"#!/bin/sh\nid\n"),
        capped(),
        dir("usr/local/", 0o755),
        dir("usr/local/bin/", 0o755),
        file("usr/local/bin/hello", 0o755, HELLO),
    ]
}

/// The podc binary under test.
pub fn podc(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podc"));
    c.env("PODC_ROOT", root);
    c
}

pub fn run_ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

pub fn run_err(c: &mut Command) -> Output {
    let o = c.output().unwrap();
    assert!(
        !o.status.success(),
        "{c:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    o
}

/// Exports `reference` with the CLI and lists the tarball.
pub fn export_listing(root: &Path, reference: &str) -> Vec<String> {
    let out = root.join("export.tar");
    run_ok(
        podc(root)
            .args(["image", "export", reference, "-o"])
            .arg(&out),
    );
    let data = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    tar_listing(&data)
}

/// Every path under `dir`, relative, sorted (to prove nothing changed).
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(base, &p, out);
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Deterministic incompressible bytes (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn names_in_ls(root: &Path) -> BTreeMap<String, String> {
    let out = run_ok(podc(root).args(["image", "ls", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut m = BTreeMap::new();
    for i in v.as_array().unwrap() {
        for n in i["names"].as_array().unwrap() {
            m.insert(
                n.as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap().to_string(),
            );
        }
    }
    m
}
