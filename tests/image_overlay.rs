//! Two containers of one image get their own writable layer over the
//! image's shared read-only layers (real overlayfs mounts, as root).

mod image_support;

use image_support::*;
use podc::image::{ContainerRootfs, Store};
use std::path::Path;

struct Unmount<'a>(&'a ContainerRootfs);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = self.0.unmount();
    }
}

#[test]
fn two_containers_of_one_image_never_see_each_others_writes() {
    if skip_unless_root("mounting overlayfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    write_oci_layout(&img, &t.path().join("layout"), Some("test/busybox:1"));
    let store = Store::open(&root).unwrap();
    store.import(&t.path().join("layout"), None).unwrap();
    let image = store.image("test/busybox:1").unwrap();

    let pod = t.path().join("pods/web");
    let a = ContainerRootfs::new(&image, &pod.join("a"));
    let b = ContainerRootfs::new(&image, &pod.join("b"));
    for c in [&a, &b] {
        c.prepare().unwrap();
        if let Err(e) = c.mount() {
            skip(&format!(
                "this kernel/filesystem cannot mount overlayfs here: {e:#}"
            ));
            return;
        }
    }
    let _ua = Unmount(&a);
    let _ub = Unmount(&b);
    let (ra, rb) = (&a.target, &b.target);
    // the merged view is the image: whiteouts and the opaque dir apply
    for r in [ra, rb] {
        assert_eq!(std::fs::read(r.join("etc/passwd")).unwrap(), PASSWD2);
        assert!(!r.join("etc/old.conf").exists());
        assert!(!r.join("var").exists());
        let mut data: Vec<_> = std::fs::read_dir(r.join("opt/data"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        data.sort();
        assert_eq!(data, ["c"]);
        assert_eq!(
            std::fs::read_link(r.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
    }
    // writes, changes and deletions in one container stay there
    std::fs::write(ra.join("etc/only-a"), b"a").unwrap();
    std::fs::write(ra.join("etc/passwd"), b"changed by a\n").unwrap();
    std::fs::remove_file(ra.join("etc/motd")).unwrap();
    std::fs::write(rb.join("tmp/only-b"), b"b").unwrap();
    assert!(!rb.join("etc/only-a").exists());
    assert_eq!(std::fs::read(rb.join("etc/passwd")).unwrap(), PASSWD2);
    assert!(rb.join("etc/motd").exists());
    assert!(!ra.join("tmp/only-b").exists());
    // the image's layers are untouched
    for l in image.lower_dirs() {
        assert!(!l.join("etc/only-a").exists() && !l.join("tmp/only-b").exists());
    }
    assert_eq!(export_listing(&root, "test/busybox:1"), busybox_expected());
    // a container runs from it: busybox in the merged root
    let out = std::process::Command::new("chroot")
        .arg(ra)
        .args(["/bin/sh", "-c", "busybox cat /etc/only-a && ls /opt/data"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ac\n");

    drop(_ua);
    drop(_ub);
    assert!(!ra.join("etc").exists(), "unmounted");
    // recreating the container throws the writable layer away
    a.prepare().unwrap();
    a.mount().unwrap();
    let _ua = Unmount(&a);
    assert!(!ra.join("etc/only-a").exists());
    assert_eq!(std::fs::read(ra.join("etc/passwd")).unwrap(), PASSWD2);
    // and a mounted rootfs cannot be recreated underneath itself
    assert!(a
        .prepare()
        .unwrap_err()
        .to_string()
        .contains("still mounted"));
}

#[test]
fn mount_unit_names_the_rootfs_and_its_options() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    write_oci_layout(&img, &t.path().join("layout"), Some("test/busybox:1"));
    let store = Store::open(&root).unwrap();
    store.import(&t.path().join("layout"), None).unwrap();
    let image = store.image("test/busybox:1").unwrap();
    let c = ContainerRootfs::new(&image, Path::new("/var/lib/podc/pods/web-1/app"));
    let u = c.mount_unit("podc rootfs web-1/app").unwrap();
    assert_eq!(u.name, "var-lib-podc-pods-web\\x2d1-app-rootfs.mount");
    let lower: Vec<String> = image
        .lower_dirs()
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    assert!(u.text.contains(&format!(
        "Options=lowerdir={},upperdir=/var/lib/podc/pods/web-1/app/upper,workdir=/var/lib/podc/pods/web-1/app/work\n",
        lower.join(":")
    )));
    assert!(u
        .text
        .contains("Where=/var/lib/podc/pods/web-1/app/rootfs\nType=overlay\n"));
    // systemd accepts the unit as written, when it is installed
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&u.name);
    std::fs::write(&path, &u.text).unwrap();
    if let Ok(o) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // systemd agrees with the unit name for that path, when it is installed
    if let Ok(o) = std::process::Command::new("systemd-escape")
        .args(["--path", "/var/lib/podc/pods/web-1/app/rootfs"])
        .output()
    {
        if o.status.success() {
            assert_eq!(
                format!("{}.mount", String::from_utf8_lossy(&o.stdout).trim()),
                u.name
            );
        }
    }
}

#[test]
fn paths_with_overlay_specials_are_escaped_for_the_kernel() {
    if skip_unless_root("mounting overlayfs") {
        return;
    }
    // ':' separates lower dirs and ',' options: both must be escaped
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("st:o,re");
    let f = t.path().join("r.tar");
    std::fs::write(
        &f,
        layer_tar(&[dir("./", 0o755), file("hello", 0o644, b"hi")]),
    )
    .unwrap();
    let store = Store::open(&root).unwrap();
    store.import(&f, Some("special:1")).unwrap();
    let image = store.image("special:1").unwrap();
    let c = ContainerRootfs::new(&image, &t.path().join("po:d,1/c"));
    c.prepare().unwrap();
    assert!(
        c.options().unwrap().contains("st\\:o\\,re"),
        "{}",
        c.options().unwrap()
    );
    c.mount().unwrap();
    let _u = Unmount(&c);
    assert_eq!(std::fs::read(c.target.join("hello")).unwrap(), b"hi");
    std::fs::write(c.target.join("new"), b"x").unwrap();
    assert!(c.upper.join("new").exists());
}
