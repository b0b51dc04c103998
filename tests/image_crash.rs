//! Crash safety (kill -9 of a real import at many moments) and concurrent
//! writers.

mod image_support;

use image_support::*;
use podc::image::unpack::Compression;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn big_image() -> (TestImage, Vec<String>) {
    let a = noise(48 << 20, 1);
    let b = noise(48 << 20, 2);
    let l1 = vec![
        dir("./", 0o755),
        file("a.bin", 0o644, &a),
        file("keep", 0o644, b"keep\n"),
    ];
    let l2 = vec![file("b.bin", 0o600, &b)];
    let l3 = vec![file(".wh.a.bin", 0o644, b""), file("c", 0o644, b"c\n")];
    let img = TestImage::new(
        vec![
            layer(&l1, Compression::None),
            layer(&l2, Compression::Gzip),
            layer(&l3, Compression::None),
        ],
        busybox_config(),
    );
    let sha = |d: &[u8]| podc::image::Digest::of_bytes(d).short().to_string();
    let mut want = vec![
        "./ dir 755 0:0".to_string(),
        format!("b.bin file 600 0:0 {}", sha(&b)),
        format!("c file 644 0:0 {}", sha(b"c\n")),
        format!("keep file 644 0:0 {}", sha(b"keep\n")),
    ];
    want.sort();
    (img, want)
}

/// Bytes staged by process `pid` (its `tmp/txn-PID-*` dirs).
fn staged_bytes(tmp: &std::path::Path, pid: u32) -> u64 {
    let mut n = 0;
    let prefix = format!("txn-{pid}-");
    let mut todo: Vec<_> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) => n += m.len(),
                Err(_) => {}
            }
        }
    }
    n
}

fn assert_consistent(root: &std::path::Path) {
    let out = run_ok(podc(root).args(["image", "check"]));
    assert_eq!(out.trim(), "store is consistent");
    // every visible layer is complete (check verifies meta.json), and the
    // index parses and lists nothing half-imported
    for (name, digest) in names_in_ls(root) {
        run_ok(podc(root).args(["image", "inspect", &digest]));
        assert!(!name.is_empty());
    }
}

#[test]
fn kill_9_at_any_moment_leaves_a_consistent_store() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let (img, want) = big_image();
    let archive = t.path().join("big.docker.tar");
    write_docker_archive(&img, &archive, "big:1");
    // a first image already in the store must survive every crash
    let small = t.path().join("small.tar");
    std::fs::write(
        &small,
        layer_tar(&[dir("./", 0o755), file("s", 0o644, b"s")]),
    )
    .unwrap();
    run_ok(
        podc(&root)
            .args(["image", "import"])
            .arg(&small)
            .args(["--name", "small:1"]),
    );

    // kill when the import has staged a growing share of its data: from
    // right at the start to the commit at the end
    let total = 2 * std::fs::metadata(&archive).unwrap().len();
    let mut killed_midway = 0;
    for step in 0..=9u64 {
        let mut child = podc(&root)
            .args(["image", "import"])
            .arg(&archive)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while staged_bytes(&root.join("images/tmp"), child.id()) < total * step / 10
            && Instant::now() < deadline
        {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let staged = std::fs::read_dir(root.join("images/tmp")).unwrap().count();
        // any next command, even a read-only one, cleans up what the kill left
        let names = names_in_ls(&root);
        assert!(names.contains_key("docker.io/library/small:1"));
        assert_eq!(
            std::fs::read_dir(root.join("images/tmp")).unwrap().count(),
            0,
            "left {staged}"
        );
        let big = names.contains_key("docker.io/library/big:1");
        assert_eq!(
            std::fs::read_dir(root.join("images/layers"))
                .unwrap()
                .count(),
            if big { 4 } else { 1 }
        );
        if !finished && !names.contains_key("docker.io/library/big:1") {
            killed_midway += 1;
        }
        assert_consistent(&root);
        if names.contains_key("docker.io/library/big:1") {
            // it committed before the kill: start over for the next moment
            run_ok(podc(&root).args(["image", "rm", "big:1"]));
        }
    }
    assert!(
        killed_midway >= 3,
        "only {killed_midway} kills hit an import in progress"
    );
    // the next import succeeds and yields the right tree
    run_ok(podc(&root).args(["image", "import"]).arg(&archive));
    assert_eq!(
        std::fs::read_dir(root.join("images/tmp")).unwrap().count(),
        0
    );
    // exactly the parts of the two images are left: layers 1 + 3, blobs
    // (manifest, config, layers) 3 + 5
    assert_eq!(
        std::fs::read_dir(root.join("images/layers"))
            .unwrap()
            .count(),
        4
    );
    assert_eq!(
        std::fs::read_dir(root.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        8
    );
    assert_consistent(&root);
    assert_eq!(export_listing(&root, "big:1"), want);
}

#[test]
fn concurrent_writers_and_readers_do_not_corrupt_the_store() {
    if skip_unless_root("ownership") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let mut files = Vec::new();
    for i in 0..6 {
        let f = t.path().join(format!("r{i}.tar.zst"));
        let raw = layer_tar(&[
            dir("./", 0o755),
            file("shared", 0o644, b"same in all"),
            file(&format!("f{i}"), 0o644, &noise(2 << 20, i)),
        ]);
        std::fs::write(&f, compress(&raw, Compression::Zstd)).unwrap();
        files.push(f);
    }
    let children: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            podc(&root)
                .args(["image", "import"])
                .arg(f)
                .args(["--name", &format!("c:{i}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // readers in parallel always see a parseable, consistent index
    for _ in 0..10 {
        run_ok(podc(&root).args(["image", "ls"]));
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(names_in_ls(&root).len(), 6);
    assert_consistent(&root);
}
