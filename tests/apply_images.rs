//! `podc apply` decides imagePullPolicy before it changes anything: Never
//! fails with Kubernetes' ErrImageNeverPull when the image is missing,
//! IfNotPresent uses the image in the store without a registry, and a
//! failed pull leaves the host as it was.
mod support;

use support::podc::Podc;

#[test]
fn pull_policy_is_decided_before_anything_is_installed() -> std::io::Result<()> {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    let pod = |name: &str, image: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n    imagePullPolicy: {policy}\n    command: [sleep, '1000']\n"
        )
    };
    // Never, and the image is not in the store: refused, nothing written.
    p.manifest(
        "/run/never.yaml",
        &pod("never", "example.test/missing:1", "Never"),
    );
    let out = p.apply("/run/never.yaml", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("ErrImageNeverPull"), "{err}");
    assert!(err.contains("pod default/never container c"), "{err}");
    p.sd.sh_ok("test ! -e /etc/systemd/system/podc_default_never.target");

    // An unreachable registry under IfNotPresent: ErrImagePull, nothing written.
    p.manifest(
        "/run/pull.yaml",
        &pod("pull", "127.0.0.1:9/missing:1", "IfNotPresent"),
    );
    let out = p.apply("/run/pull.yaml", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("ErrImagePull"), "{err}");
    p.sd.sh_ok("test ! -e /etc/systemd/system/podc_default_pull.target");

    // IfNotPresent with the image in the store: installed and running.
    p.manifest("/run/ok.yaml", &pod("ok", "busybox:1.36", "IfNotPresent"));
    p.rootfs("ok", &["c"]);
    p.apply_ok("/run/ok.yaml", &[]);
    assert_eq!(p.prop("podc_default_ok_c.service", "ActiveState"), "active");
    Ok(())
}
