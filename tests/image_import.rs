//! Import every format, export, and compare the tree exactly.

mod image_support;

use image_support::*;
use podc::image::unpack::Compression;
use podc::image::{resolve_process, ContainerOverrides, Store};

#[test]
fn oci_layout_dir_exports_the_exact_tree() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    let layout = t.path().join("layout");
    write_oci_layout(&img, &layout, Some("test/busybox:1"));
    let out = run_ok(podc(&root).args(["image", "import"]).arg(&layout));
    assert!(out.contains(img.digest().as_str()), "{out}");
    assert_eq!(export_listing(&root, "test/busybox:1"), busybox_expected());
    // the manifest digest is kept as is, and the layers are read-only overlay dirs
    let store = Store::open(&root).unwrap();
    let i = store.image("docker.io/test/busybox:1").unwrap();
    assert_eq!(i.digest, img.digest());
    assert_eq!(i.layers.len(), 3);
    assert_eq!(i.lower_dirs().len(), 3);
    assert!(i.lower_dirs()[0].ends_with(format!("{}/diff", img.layers[2].diff_id.hex())));
    // inspect shows the config
    let v: serde_json::Value = serde_json::from_str(&run_ok(podc(&root).args([
        "image",
        "inspect",
        "test/busybox:1",
    ])))
    .unwrap();
    assert_eq!(
        v["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert_eq!(v["config"]["User"], "1000:1000");
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        run_ok(podc(&root).args(["image", "check"])).trim(),
        "store is consistent"
    );
}

#[test]
fn oci_archive_and_docker_archive_export_the_same_tree() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    let oci = t.path().join("busybox.oci.tar");
    write_oci_archive(&img, &oci, Some("test/busybox:oci"));
    let docker = t.path().join("busybox.docker.tar");
    write_docker_archive(&img, &docker, "test/busybox:docker");
    run_ok(podc(&root).args(["image", "import"]).arg(&oci));
    run_ok(podc(&root).args(["image", "import"]).arg(&docker));
    assert_eq!(
        export_listing(&root, "test/busybox:oci"),
        busybox_expected()
    );
    assert_eq!(
        export_listing(&root, "test/busybox:docker"),
        busybox_expected()
    );
    let names = names_in_ls(&root);
    assert_eq!(names.len(), 2);
    // same layers: unpacked once per diffID and shared
    let layers = std::fs::read_dir(root.join("images/layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 3);
    let store = Store::open(&root).unwrap();
    let a = store.image("test/busybox:oci").unwrap();
    let b = store.image("test/busybox:docker").unwrap();
    assert_eq!(a.lower_dirs(), b.lower_dirs());
    assert_eq!(a.config, b.config);
    // ls table has the documented columns
    let table = run_ok(podc(&root).args(["image", "ls"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TAG", "DIGEST", "SIZE", "CREATED"]);
    assert!(table.contains("test/busybox  docker"), "{table}");
}

#[test]
fn gzip_compressed_oci_archive_is_extracted_then_imported() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    let plain = t.path().join("a.tar");
    write_oci_archive(&img, &plain, Some("test/busybox:gz"));
    let gz = t.path().join("a.tar.gz");
    std::fs::write(
        &gz,
        compress(&std::fs::read(&plain).unwrap(), Compression::Gzip),
    )
    .unwrap();
    run_ok(podc(&root).args(["image", "import"]).arg(&gz));
    assert_eq!(export_listing(&root, "test/busybox:gz"), busybox_expected());
}

#[test]
fn rootfs_tarballs_in_every_compression() {
    if skip_unless_root("importing device nodes and ownership") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let raw = layer_tar(&busybox_rootfs_entries());
    for (c, tag) in [
        (Compression::None, "none"),
        (Compression::Gzip, "gzip"),
        (Compression::Zstd, "zstd"),
    ] {
        let f = t.path().join(format!("rootfs-{tag}.tar"));
        std::fs::write(&f, compress(&raw, c)).unwrap();
        let name = format!("tools:{tag}");
        run_ok(
            podc(&root)
                .args(["image", "import"])
                .arg(&f)
                .args(["--name", &name]),
        );
        assert_eq!(export_listing(&root, &name), busybox_expected(), "{tag}");
        let store = Store::open(&root).unwrap();
        let img = store.image(&name).unwrap();
        assert_eq!(img.layers[0].media_type, c.layer_media_type());
        // a rootfs image has no PATH: the default one applies and finds sh
        let p = resolve_process(
            &img.config,
            &ContainerOverrides {
                command: Some(vec!["sh".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.env_value("PATH"), Some(podc::image::DEFAULT_PATH));
        assert_eq!(
            img.find_executable("sh", p.env_value("PATH").unwrap())
                .as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(
            img.find_executable("hello", p.env_value("PATH").unwrap())
                .as_deref(),
            Some("/usr/local/bin/hello")
        );
        assert_eq!(
            img.find_executable("nothere", p.env_value("PATH").unwrap()),
            None
        );
    }
    // one diffID, three blobs: the layer is unpacked once
    assert_eq!(
        std::fs::read_dir(root.join("images/layers"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn process_resolution_and_lookup_use_the_merged_layers() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    write_oci_layout(&img, &t.path().join("l"), Some("test/busybox:1"));
    let store = Store::open(&root).unwrap();
    let imported = store.import(&t.path().join("l"), None).unwrap();
    assert_eq!(imported.len(), 1);
    let i = store.image("test/busybox:1").unwrap();
    let p = resolve_process(
        &i.config,
        &ContainerOverrides {
            args: Some(vec!["echo bye".into()]),
            env: vec![("GREETING".into(), "yo".into())],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(p.argv, ["/bin/sh", "-c", "echo bye"]);
    assert_eq!(p.env_value("GREETING"), Some("yo"));
    assert_eq!(p.env_value("PATH"), Some("/usr/local/bin:/bin"));
    assert_eq!(
        (
            p.working_dir.as_str(),
            p.user.as_deref(),
            p.stop_signal.as_deref()
        ),
        ("/opt", Some("1000:1000"), Some("SIGQUIT"))
    );
    // whiteouts and opaque dirs are honoured by lookups too
    let lower = i.lower_dirs();
    assert!(podc::image::rootfs::resolve_in_layers(&lower, "/etc/old.conf").is_none());
    assert!(podc::image::rootfs::resolve_in_layers(&lower, "/opt/data/a").is_none());
    assert!(podc::image::rootfs::resolve_in_layers(&lower, "/opt/data/c").is_some());
    assert!(podc::image::rootfs::resolve_in_layers(&lower, "/var/cache/junk").is_none());
    assert_eq!(
        podc::image::rootfs::resolve_in_layers(&lower, "/bin/sh")
            .unwrap()
            .path,
        "/bin/busybox"
    );
}

#[test]
fn names_move_rm_untags_and_prune_keeps_used_images() {
    if skip_unless_root("importing device nodes") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let a = t.path().join("a.tar");
    std::fs::write(&a, layer_tar(&[dir("./", 0o755), file("a", 0o644, b"a")])).unwrap();
    let b = t.path().join("b.tar");
    std::fs::write(&b, layer_tar(&[dir("./", 0o755), file("b", 0o644, b"b")])).unwrap();
    run_ok(
        podc(&root)
            .args(["image", "import"])
            .arg(&a)
            .args(["--name", "x:1"]),
    );
    run_ok(
        podc(&root)
            .args(["image", "import"])
            .arg(&a)
            .args(["--name", "x:2"]),
    );
    run_ok(
        podc(&root)
            .args(["image", "import"])
            .arg(&b)
            .args(["--name", "y:1"]),
    );
    let store = Store::open(&root).unwrap();
    let y = store.image("y:1").unwrap();
    store
        .set_users("pod-web", std::slice::from_ref(&y.digest))
        .unwrap();
    // rm of a used image is refused with the user's name
    let o = run_err(podc(&root).args(["image", "rm", "y:1"]));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("used by pod-web"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // prune removes the unused ones, layers included
    run_ok(podc(&root).args(["image", "prune"]));
    let names = names_in_ls(&root);
    assert_eq!(names.keys().collect::<Vec<_>>(), ["docker.io/library/y:1"]);
    assert_eq!(
        std::fs::read_dir(root.join("images/layers"))
            .unwrap()
            .count(),
        1
    );
    store.clear_users("pod-web").unwrap();
    run_ok(podc(&root).args(["image", "rm", "y:1"]));
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
    let o = run_err(podc(&root).args(["image", "inspect", "y:1"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the store"));
}

#[test]
fn bad_input_gets_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let o = run_err(
        podc(&root)
            .args(["image", "import"])
            .arg(t.path().join("missing.tar")),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
    let junk = t.path().join("junk");
    std::fs::write(
        &junk,
        b"this is not a tarball at all, just text that is long enough.............",
    )
    .unwrap();
    let o = run_err(
        podc(&root)
            .args(["image", "import"])
            .arg(&junk)
            .args(["--name", "j:1"]),
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.starts_with("podc: "), "{e}");
    let o = run_err(
        podc(&root)
            .args(["image", "import"])
            .arg(&junk)
            .args(["--name", "Bad Name"]),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid image reference"));
    // a layout whose blob does not match its digest
    let img = TestImage::new(
        vec![layer(&[file("f", 0o644, b"x")], Compression::None)],
        busybox_config(),
    );
    let l = t.path().join("l");
    write_oci_layout(&img, &l, Some("bad/digest:1"));
    std::fs::write(
        l.join("blobs/sha256").join(img.layers[0].digest.hex()),
        layer_tar(&[file("f", 0o644, b"y")]),
    )
    .unwrap();
    let o = run_err(podc(&root).args(["image", "import"]).arg(&l));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // a config whose diffID does not match the layer
    let good = TestImage::new(
        vec![layer(&[file("f", 0o644, b"x")], Compression::Gzip)],
        busybox_config(),
    );
    let mut cfg: serde_json::Value = serde_json::from_slice(&good.config).unwrap();
    cfg["rootfs"]["diff_ids"][0] = serde_json::json!(format!("sha256:{}", "1".repeat(64)));
    let mut broken = TestImage::new(vec![], serde_json::json!({}));
    broken.layers = good.layers;
    broken.config = serde_json::to_vec(&cfg).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&good.manifest).unwrap();
    m["config"]["digest"] =
        serde_json::json!(podc::image::Digest::of_bytes(&broken.config).as_str());
    m["config"]["size"] = serde_json::json!(broken.config.len());
    broken.manifest = serde_json::to_vec(&m).unwrap();
    let l2 = t.path().join("l2");
    write_oci_layout(&broken, &l2, Some("bad/diffid:1"));
    let o = run_err(podc(&root).args(["image", "import"]).arg(&l2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("diffID mismatch"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // nothing of the failed imports is visible, and staging is cleaned by the next writer
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
}

#[test]
fn docker_25_style_oci_archive_takes_the_containerd_name() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    let l = t.path().join("layout");
    write_oci_layout(&img, &l, Some("latest"));
    let mut idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l.join("index.json")).unwrap()).unwrap();
    idx["manifests"][0]["annotations"]["io.containerd.image.name"] =
        serde_json::json!("docker.io/team/tool:2");
    std::fs::write(l.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    let out = run_ok(podc(&root).args(["image", "import"]).arg(&l));
    assert!(out.contains("team/tool:2"), "{out}");
    // a bare tag alone names nothing, and the output says how to name it
    let root2 = t.path().join("root2");
    let l2 = t.path().join("layout2");
    write_oci_layout(&img, &l2, Some("latest"));
    let out = run_ok(podc(&root2).args(["image", "import"]).arg(&l2));
    assert!(out.contains("unnamed"), "{out}");
    assert!(names_in_ls(&root2).is_empty());
    assert_eq!(
        export_listing(&root2, img.digest().short()),
        busybox_expected()
    );
}

#[test]
fn references_resolve_by_name_digest_and_prefix() {
    if skip_unless_root("ownership") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let f = t.path().join("r.tar");
    std::fs::write(&f, layer_tar(&[dir("./", 0o755), file("x", 0o644, b"x")])).unwrap();
    let store = Store::open(&root).unwrap();
    let img = store.import(&f, Some("team/app:1.2")).unwrap().remove(0);
    let d = img.digest.clone();
    for r in [
        "team/app:1.2".to_string(),
        "docker.io/team/app:1.2".to_string(),
        d.to_string(),
        d.hex().to_string(),
        d.short().to_string(),
        format!("team/app@{d}"),
    ] {
        assert_eq!(
            store.resolve(&r).unwrap().map(|i| i.digest),
            Some(d.clone()),
            "{r}"
        );
    }
    for r in ["team/app", "team/app:1.3", "other/app:1.2"] {
        assert!(store.resolve(r).unwrap().is_none(), "{r}");
    }
    let none = format!("sha256:{}", "0".repeat(64));
    assert!(store.resolve(&none).unwrap().is_none());
    assert!(store
        .resolve("sha256:abc")
        .unwrap_err()
        .to_string()
        .contains("malformed digest"));
    // a second name for the same image; rm of one name keeps the other
    store.import(&f, Some("team/app:latest")).unwrap();
    let both = store.image("team/app").unwrap();
    assert_eq!(both.digest, d);
    assert_eq!(both.names.len(), 2);
    store.remove("team/app:1.2", false).unwrap();
    assert_eq!(
        store.image(d.as_str()).unwrap().names,
        ["docker.io/team/app:latest"]
    );
    assert!(store.resolve("team/app:1.2").unwrap().is_none());
}
