//! Mangled layers and archives: an error or success, never a panic, and
//! never a write outside the layer directory.

mod image_support;

use image_support::*;
use podc::image::unpack::{decompress, unpack_layer};
use proptest::prelude::*;

fn sample_layer() -> Vec<u8> {
    layer_tar(&[
        dir("./", 0o755),
        dir("a/", 0o755),
        file("a/f", 0o644, b"hello world"),
        symlink("a/s", "../../../../etc"),
        hardlink("a/h", "a/f"),
        file("a/.wh.gone", 0o644, b""),
        file("b", 0o600, &noise(3000, 9)),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mangled_layers_never_panic_or_escape(
        flips in proptest::collection::vec((0usize..6144, any::<u8>()), 1..12),
        cut in proptest::option::of(0usize..6144),
    ) {
        let mut data = sample_layer();
        for (i, b) in flips {
            let n = data.len();
            data[i % n] = b;
        }
        if let Some(c) = cut {
            data.truncate(c.min(data.len()));
        }
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("layer");
        std::fs::create_dir(&dest).unwrap();
        let limits = podc::image::limits::Limits::default();
        let caps = podc::image::unpack::LayerCaps { limits: &limits, image_left: u64::MAX };
        let r = decompress(std::io::BufReader::new(&data[..])).and_then(|r| unpack_layer(r, &dest, &caps));
        if let Err(e) = &r {
            let text = format!("{:#}", e);
            prop_assert!(!text.is_empty());
        }
        let outside: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(outside, vec![std::ffi::OsString::from("layer")]);
    }
}

#[test]
fn mangled_archives_fail_cleanly_through_the_cli() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = TestImage::new(
        vec![layer(
            &[dir("./", 0o755), file("x", 0o644, b"x")],
            podc::image::unpack::Compression::Gzip,
        )],
        busybox_config(),
    );
    let good = t.path().join("good.tar");
    write_oci_archive(&img, &good, Some("fuzz/x:1"));
    let data = std::fs::read(&good).unwrap();
    let mut seed = 7u64;
    for round in 0..24 {
        let mut d = data.clone();
        for _ in 0..(1 + round % 5) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % d.len();
            d[i] = (seed >> 32) as u8;
        }
        let f = t.path().join("bad.tar");
        std::fs::write(&f, &d).unwrap();
        let o = podc(&root)
            .args(["image", "import"])
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "round {round}: {err}");
        if !o.status.success() {
            assert!(err.starts_with("podc: "), "round {round}: {err}");
        }
        run_ok(podc(&root).args(["image", "check"]));
    }
}
