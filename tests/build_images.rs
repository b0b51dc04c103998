//! `podc build` takes ENTRYPOINT, CMD, ENV, WorkingDir, User and StopSignal
//! from the local image store, as Kubernetes does, and pins the digest.
mod image_support;

use image_support::*;
use std::process::Command;

#[test]
fn build_resolves_the_image_config_from_the_store() {
    if skip_unless_root("importing images") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let archive = t.path().join("img.tar");
    write_oci_archive(&busybox_image(), &archive, Some("example.test/tools:1"));
    let o = podc(&root)
        .args(["image", "import"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pod = t.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: example.test/tools:1\n    args: [\"echo $(GREETING) there\"]\n    env: [{name: EXTRA, value: x}]\n",
    )
    .unwrap();
    let out = t.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_podc"))
        .arg("--root")
        .arg(&root)
        .args(["build", "--systemd-version", "252", "-o"])
        .arg(&out)
        .arg(&pod)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("not in the local image store"), "{stderr}");
    let unit = std::fs::read_to_string(out.join("units/podc_default_p_a.service")).unwrap();
    // ENTRYPOINT kept, CMD replaced by args, $(GREETING) from the image env.
    assert!(
        unit.contains("\"--\" \"/bin/sh\" \"-c\" \"echo hi there\"\n"),
        "{unit}"
    );
    assert!(
        unit.contains("Environment=\"PATH=/usr/local/bin:/bin\"\n"),
        "{unit}"
    );
    assert!(unit.contains("Environment=\"GREETING=hi\"\n"), "{unit}");
    assert!(unit.contains("Environment=\"EXTRA=x\"\n"), "{unit}");
    assert!(unit.contains("\"--cwd\" \"/opt\""), "{unit}");
    assert!(unit.contains("\"--user\" \"1000:1000\""), "{unit}");
    assert!(unit.contains("KillSignal=SIGQUIT\n"), "{unit}");
    assert!(
        unit.contains("# image example.test/tools:1 is sha256:"),
        "{unit}"
    );
    // The container runs exactly that image: the joiner gets its layers
    // from the store, and the infra unit has nothing to resolve at start.
    assert!(
        unit.contains(&format!("\"--layer\" \"{}/images/layers/", root.display())),
        "{unit}"
    );
    let infra = std::fs::read_to_string(out.join("units/podc_default_p.service")).unwrap();
    assert!(!infra.contains("\"rootfs\""), "{infra}");
}
