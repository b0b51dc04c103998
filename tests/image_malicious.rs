//! Layers that try to write outside their directory are rejected, and
//! nothing appears outside the store.

mod image_support;

use image_support::*;
use podc::image::unpack::Compression;

struct Case {
    name: &'static str,
    entries: Vec<Entry>,
    error: &'static str,
}

/// `outside` is the absolute path of a directory outside the store; `up`
/// reaches it from inside a layer directory with `..` components.
fn cases(outside: &str, up: &str) -> Vec<Case> {
    vec![
        Case {
            name: "dotdot",
            entries: vec![dir("./", 0o755), file(&format!("{up}/pwned"), 0o644, b"x")],
            error: "'..' component",
        },
        Case {
            name: "dotdot-inner",
            entries: vec![dir("a/", 0o755), file("a/../../pwned", 0o644, b"x")],
            error: "'..' component",
        },
        Case {
            name: "absolute",
            entries: vec![file(&format!("{outside}/pwned"), 0o644, b"x")],
            error: "absolute path",
        },
        Case {
            name: "symlink-absolute",
            entries: vec![symlink("esc", outside), file("esc/pwned", 0o644, b"x")],
            error: "through the symlink",
        },
        Case {
            name: "symlink-relative",
            entries: vec![
                dir("d/", 0o755),
                symlink("d/esc", up),
                file("d/esc/pwned", 0o644, b"x"),
            ],
            error: "through the symlink",
        },
        Case {
            name: "symlink-dir-entry",
            entries: vec![symlink("esc", outside), dir("esc/sub/", 0o755)],
            error: "through the symlink",
        },
        Case {
            name: "hardlink-dotdot",
            entries: vec![hardlink("hl", &format!("{up}/secret"))],
            error: "'..' component",
        },
        Case {
            name: "hardlink-absolute",
            entries: vec![hardlink("hl", &format!("{outside}/secret"))],
            error: "absolute path",
        },
        Case {
            name: "hardlink-through-symlink",
            entries: vec![symlink("esc", outside), hardlink("hl", "esc/secret")],
            error: "through the symlink",
        },
        Case {
            name: "whiteout-through-symlink",
            entries: vec![symlink("esc", outside), file("esc/.wh.secret", 0o644, b"")],
            error: "through the symlink",
        },
        Case {
            name: "overlay-xattr",
            entries: vec![{
                let mut d = dir("x/", 0o755);
                d.xattrs
                    .push(("trusted.overlay.redirect".into(), b"/etc".to_vec()));
                d
            }],
            error: "overlayfs-private xattr",
        },
    ]
}

#[test]
fn escaping_layers_are_rejected_and_nothing_leaks() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    let outside_s = outside.to_str().unwrap();
    let up = format!("{}{}", "../".repeat(16), outside_s.trim_start_matches('/'));
    let before = tree(t.path());
    for case in cases(outside_s, &up) {
        for (i, c) in [Compression::None, Compression::Gzip]
            .into_iter()
            .enumerate()
        {
            let entries = &case.entries;
            let f = t.path().join(format!("{}-{i}.tar", case.name));
            std::fs::write(&f, compress(&layer_tar(entries), c)).unwrap();
            let o = run_err(
                podc(&root)
                    .args(["image", "import"])
                    .arg(&f)
                    .args(["--name", "evil:1"]),
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(case.error),
                "{}: expected {:?} in {err}",
                case.name,
                case.error
            );
            assert_eq!(o.status.code(), Some(1), "{}", case.name);
            std::fs::remove_file(&f).unwrap();
            // the same layer inside an OCI layout is rejected the same way
            let layout = t.path().join(format!("{}-layout", case.name));
            let img = TestImage::new(vec![layer(entries, c)], busybox_config());
            write_oci_layout(&img, &layout, Some("evil/layout:1"));
            let o = run_err(podc(&root).args(["image", "import"]).arg(&layout));
            assert!(
                String::from_utf8_lossy(&o.stderr).contains(case.error),
                "{} (layout)",
                case.name
            );
            std::fs::remove_dir_all(&layout).unwrap();
        }
    }
    // nothing was written outside the store: the tree around it is as it was
    let mut after = tree(t.path());
    after.retain(|p| !p.starts_with("root"));
    let mut before = before;
    before.retain(|p| !p.starts_with("root"));
    assert_eq!(after, before);
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(outside.join("secret")).unwrap().nlink(),
        1
    );
    // and nothing of them is in the store
    assert!(names_in_ls(&root).is_empty());
    assert_eq!(
        std::fs::read_dir(root.join("images/layers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(root.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    run_ok(podc(&root).args(["image", "check"]));
    assert_eq!(
        std::fs::read_dir(root.join("images/tmp")).unwrap().count(),
        0
    );
}

#[test]
fn in_layout_paths_cannot_escape_either() {
    // a docker archive whose manifest.json points outside the archive
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let d = t.path().join("dock");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(
        t.path().join("cfg.json"),
        br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .unwrap();
    std::fs::write(
        d.join("manifest.json"),
        br#"[{"Config":"../cfg.json","RepoTags":["x:1"],"Layers":[]}]"#,
    )
    .unwrap();
    let o = run_err(podc(&root).args(["image", "import"]).arg(&d));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("'..' component"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(
        d.join("manifest.json"),
        br#"[{"Config":"/etc/hostname","RepoTags":["x:1"],"Layers":[]}]"#,
    )
    .unwrap();
    let o = run_err(podc(&root).args(["image", "import"]).arg(&d));
    assert!(String::from_utf8_lossy(&o.stderr).contains("absolute path"));
    // a symlinked blob in a layout is not followed
    std::fs::remove_file(d.join("manifest.json")).unwrap();
    std::os::unix::fs::symlink("../cfg.json", d.join("link.json")).unwrap();
    std::fs::write(
        d.join("manifest.json"),
        br#"[{"Config":"link.json","RepoTags":["x:1"],"Layers":[]}]"#,
    )
    .unwrap();
    let o = run_err(podc(&root).args(["image", "import"]).arg(&d));
    assert!(String::from_utf8_lossy(&o.stderr).contains("symlink"));
}

#[test]
fn same_layer_symlink_then_regular_replacement_is_fine() {
    if skip_unless_root("ownership") {
        return;
    }
    // legitimate: a symlink replaced by a file of the same name is not a write through it
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let f = t.path().join("ok.tar");
    std::fs::write(
        &f,
        layer_tar(&[
            dir("./", 0o755),
            symlink("a", "/etc/passwd"),
            file("a", 0o644, b"mine"),
        ]),
    )
    .unwrap();
    run_ok(
        podc(&root)
            .args(["image", "import"])
            .arg(&f)
            .args(["--name", "ok:1"]),
    );
    let l = export_listing(&root, "ok:1");
    assert!(l.iter().any(|x| x.starts_with("a file 644")), "{l:?}");
}
