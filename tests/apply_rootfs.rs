//! The container's root file system as the joiner makes it, on a real
//! systemd 252, from an image in the store (no rootfs provisioned by hand):
//! an overlay that only the container's own mount namespace has (the
//! host's mount table does not grow with containers), a fresh writable
//! layer at every start (a restarted container starts from the image, as
//! in Kubernetes), exec hooks and `podc exec` in the container's view, and
//! no mount point ever created in the host's `/dev` (a container that is
//! not privileged has a `/dev` of its own).
mod support;

use support::podc::{pod_yaml, show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn the_root_is_a_private_overlay_with_a_fresh_layer_at_every_start() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    let overlays_on_host = || {
        p.sd.sh_ok("grep -c ' - overlay ' /proc/self/mountinfo || true")
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    let before = overlays_on_host();
    let mut y = pod_yaml(
        "fs",
        "",
        &[(
            "app",
            "if [ -e /marker ]; then echo seen > /run/state; else echo fresh > /run/state; fi; \
             echo written > /marker; exec sleep 1000",
        )],
    );
    // postStart (exec) runs in the container's mount namespace: it sees
    // the container's own tmpfs /run and the pod's /etc/hostname.
    y.push_str(
        "    lifecycle:\n      postStart:\n        exec:\n          command: [sh, -c, 'cat /etc/hostname > /hook-saw; while [ ! -s /run/state ]; do sleep 0.05; done; cp /run/state /hook-state']\n",
    );
    p.manifest("/srv/fs.yaml", &y);
    let out = p.apply_ok("/srv/fs.yaml", &[]);
    assert!(out.contains("Running 1/1 ready"), "{out}");
    let exec = |script: &str| p.run_ok(&["exec", "fs", "-c", "app", "--", "sh", "-c", script]);

    // The root is an overlay, mounted in the container's namespace only.
    let root = exec("grep ' / / ' /proc/self/mountinfo");
    assert!(root.contains(" - overlay "), "{root}");
    assert!(root.contains("lowerdir=l/0"), "{root}");
    assert_eq!(
        overlays_on_host(),
        before,
        "no container root in the host's table"
    );
    assert_eq!(
        exec("cat /run/state /marker /hook-saw /hook-state"),
        "fresh\nwritten\nfs\nfresh\n"
    );
    // The write went to the container's layer, not into the image.
    p.sd.sh_ok("test -f /var/lib/podc/pods/default_fs/containers/app/upper/marker");
    p.sd.sh_ok("for l in /var/lib/podc/images/layers/*/diff; do test ! -e $l/marker; done");

    // A restart starts from the image again.
    p.sd.sh_ok("systemctl restart podc_default_fs_app.service");
    let again = exec(
        "for i in $(seq 100); do [ -s /run/state ] && break; sleep 0.05; done; cat /run/state",
    );
    assert_eq!(
        again, "fresh\n",
        "the restarted container saw the old layer"
    );

    p.run_ok(&["delete", "fs"]);
    assert_eq!(overlays_on_host(), before);
    p.sd.sh_ok("test ! -e /var/lib/podc/pods/default_fs");
    Ok(())
}

#[test]
fn a_mount_point_missing_under_dev_is_made_in_the_containers_own_dev_only() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    let name = format!("podc-test-{}", std::process::id());
    let volume = format!(
        "    volumeMounts: [{{name: scratch, mountPath: /dev/{name}}}]\n  volumes: [{{name: scratch, emptyDir: {{}}}}]\n"
    );
    // A container that is not privileged has a /dev of its own: the mount
    // point is made there.
    let mut y = pod_yaml("dv", "", &[("app", "exec sleep 1000")]);
    y.push_str(&volume);
    p.manifest("/srv/dv.yaml", &y);
    let out = p.apply_ok("/srv/dv.yaml", &[]);
    assert!(out.contains("Running 1/1 ready"), "{out}");
    let seen = p.run_ok(&[
        "exec",
        "dv",
        "-c",
        "app",
        "--",
        "sh",
        "-c",
        &format!("echo in > /dev/{name}/f && grep -c ' /dev/{name} ' /proc/self/mountinfo"),
    ]);
    assert_eq!(seen, "1\n");
    // the write went to the volume
    p.sd.sh_ok("grep -x in /var/lib/podc/pods/default_dv/volumes/scratch/f");
    // A privileged one has the host's /dev, where podc creates nothing.
    let mut y = pod_yaml(
        "dp",
        "  restartPolicy: Never\n",
        &[("app", "exec sleep 1000")],
    );
    y.push_str("    securityContext: {privileged: true}\n");
    y.push_str(&volume);
    p.manifest("/srv/dp.yaml", &y);
    let out = p.apply("/srv/dp.yaml", &[]);
    assert!(!out.status.success(), "{}", show(&out));
    let text = show(&out);
    assert!(
        text.contains(
            "does not create mount points in /sys, /proc, or a privileged container's /dev"
        ),
        "the reason is reported: {text}"
    );
    // The namespaced systemd shares the host's /dev: nothing was made there.
    p.sd.sh_ok(&format!("test ! -e /dev/{name}"));
    Ok(())
}

#[test]
fn what_the_container_sees_in_proc_cannot_widen_its_capabilities() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    // A volume over /proc/sys/kernel with a cap_last_cap of 0: the joiner
    // must not believe it (it would then drop no capability at all).
    p.sd.sh_ok("mkdir -p /srv/fake-kernel && echo 0 > /srv/fake-kernel/cap_last_cap");
    let mut y = pod_yaml("cap", "  hostPID: true\n", &[("app", "exec sleep 1000")]);
    y.push_str(
        "    volumeMounts: [{name: k, mountPath: /proc/sys/kernel}]\n  volumes: [{name: k, hostPath: {path: /srv/fake-kernel, type: Directory}}]\n",
    );
    p.manifest("/srv/cap.yaml", &y);
    let out = p.apply_ok("/srv/cap.yaml", &[]);
    assert!(out.contains("Running 1/1 ready"), "{out}");
    let pid = p.prop("podc_default_cap_app.service", "MainPID");
    let status =
        p.sd.sh_ok(&format!("grep -E '^Cap(Bnd|Eff):' /proc/{pid}/status"));
    // containerd's 14 default capabilities (docs/security-context.md)
    assert_eq!(
        status, "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n",
        "{status}"
    );
    // and an image whose /proc is a symlink does not start at all
    p.rootfs("lnk", &["app"]);
    p.sd.sh_ok(
        "cd /var/lib/podc/pods/default_lnk/containers/app/rootfs && rm -rf proc && mkdir -p data/p && ln -s /data/p proc",
    );
    p.manifest(
        "/srv/lnk.yaml",
        &pod_yaml(
            "lnk",
            "  hostPID: true\n  restartPolicy: Never\n",
            &[("app", "exec sleep 1000")],
        ),
    );
    let out = p.apply("/srv/lnk.yaml", &[]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        show(&out).contains("/proc: is not a directory in the image"),
        "{}",
        show(&out)
    );
    Ok(())
}
