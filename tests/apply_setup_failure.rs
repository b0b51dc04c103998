//! A pod that cannot be set up (a hostPath of type Directory that does not
//! exist) fails before any container starts, with the reason in apply's
//! report and in `podc describe`, leaves nothing mounted, and starts once
//! the path exists.
mod support;

use support::podc::{show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn a_missing_host_path_directory_fails_the_pod_with_its_reason() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("hp", &["app"]);
    p.manifest(
        "/srv/hp.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hp\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: data\n    hostPath: {path: /run/podc-missing-dir, type: Directory}\n  - name: scratch\n    emptyDir: {medium: Memory}\n  containers:\n  - name: app\n    image: busybox:1.36\n    command: [sh, -c, 'echo app ran; exec sleep 1000']\n    volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /scratch}]\n",
    );
    let out = p.apply("/srv/hp.yaml", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains("/run/podc-missing-dir"),
        "the path in the report: {text}"
    );
    let desc = p.run_ok(&["describe", "pod", "hp"]);
    println!("{desc}");
    assert!(
        desc.contains("/run/podc-missing-dir"),
        "the reason in describe: {desc}"
    );
    // No container ran, and nothing of the pod is mounted.
    assert_eq!(
        p.prop(
            "podc_default_hp_app.service",
            "ExecMainStartTimestampMonotonic"
        ),
        "0"
    );
    let journal =
        p.sd.sh_ok("journalctl --no-pager -o cat -u podc_default_hp_app.service");
    assert!(!journal.contains("app ran"), "{journal}");
    let mounts =
        p.sd.sh_ok("grep -c default_hp /proc/self/mountinfo || true");
    assert_eq!(mounts.trim(), "0", "mounts left behind");

    // Once the directory exists, the same manifest starts.
    p.sd.sh_ok("mkdir -p /run/podc-missing-dir");
    let out = p.apply_ok("/srv/hp.yaml", &[]);
    assert!(out.contains("Running 1/1 ready"), "{out}");
    Ok(())
}
