//! Import streams: peak memory does not grow with the layer size.

mod image_support;

use image_support::*;
use std::io::Read;
use std::process::Command;

/// Peak RSS in kB of `podc image import FILE --name NAME`, via /usr/bin/time.
fn import_peak_rss(root: &std::path::Path, file: &std::path::Path, name: &str) -> Option<u64> {
    if !std::path::Path::new("/usr/bin/time").exists() {
        return None;
    }
    let o = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_podc"))
        .arg("--root")
        .arg(root)
        .args(["image", "import"])
        .arg(file)
        .args(["--name", name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

fn one_file_layer(path: &std::path::Path, size: u64) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    b.append_data(&mut h, "big.bin", std::io::repeat(0x5a).take(size))
        .unwrap();
    b.finish().unwrap();
}

#[test]
fn peak_memory_is_flat_in_the_layer_size() {
    if skip_unless_root("ownership") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let small = t.path().join("small.tar");
    one_file_layer(&small, 8 << 20);
    let big = t.path().join("big.tar");
    one_file_layer(&big, 512 << 20);
    let (Some(s), Some(b)) = (
        import_peak_rss(&root, &small, "s:1"),
        import_peak_rss(&root, &big, "b:1"),
    ) else {
        skip("/usr/bin/time is not installed (.ci/image-deps)");
        return;
    };
    eprintln!("peak RSS: 8 MiB layer {s} kB, 512 MiB layer {b} kB");
    // 64x the data, (nearly) the same memory: nothing buffers a whole layer
    assert!(b < s + 16 * 1024, "peak RSS grew from {s} kB to {b} kB");
    assert_eq!(
        std::fs::metadata(root.join("images/layers"))
            .map(|_| ())
            .ok(),
        Some(())
    );
    let img = podc::image::Store::open(&root)
        .unwrap()
        .image("b:1")
        .unwrap();
    assert_eq!(img.size(), 512 << 20);
}
