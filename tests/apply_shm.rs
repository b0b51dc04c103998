//! `/dev/shm` on a real systemd 252: the containers of a pod share one
//! 64 MiB tmpfs of their own, as under containerd and CRI-O, and no other
//! pod (nor the host) sees it; `hostIPC: true` uses the host's.
mod support;

use support::podc::{pod_yaml, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn each_pod_has_its_own_dev_shm_shared_by_its_containers() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    // The namespaced systemd shares the host's /dev; unique names keep
    // runs (and a run without the pod's own tmpfs) apart.
    let tok = format!("podc-shm-{}", std::process::id());
    let host_tok = format!("{tok}-host");
    p.sd.sh_ok(&format!("echo host > /dev/shm/{host_tok}"));
    p.rootfs("a", &["writer", "reader"]);
    p.rootfs("b", &["other"]);
    p.rootfs("h", &["hostipc"]);
    let mut y = pod_yaml(
        "a",
        "",
        &[
            (
                "writer",
                &format!("echo from-a > /dev/shm/{tok}; exec sleep 1000"),
            ),
            ("reader", "exec sleep 1000"),
        ],
    );
    y.push_str("---\n");
    y.push_str(&pod_yaml("b", "", &[("other", "exec sleep 1000")]));
    y.push_str("---\n");
    y.push_str(&pod_yaml(
        "h",
        "  hostIPC: true\n",
        &[("hostipc", "exec sleep 1000")],
    ));
    p.manifest("/srv/shm.yaml", &y);
    p.apply_ok("/srv/shm.yaml", &[]);

    let exec = |pod: &str, c: &str, script: &str| {
        p.run_ok(&["exec", pod, "-c", c, "--", "sh", "-c", script])
    };
    // The writer may still be writing when apply returns.
    let seen = exec(
        "a",
        "reader",
        &format!("for i in $(seq 100); do [ -s /dev/shm/{tok} ] && break; sleep 0.05; done; cat /dev/shm/{tok}"),
    );
    assert_eq!(seen, "from-a\n");
    // Kubernetes' default size: 64 MiB.
    let df = exec("a", "reader", "df -k /dev/shm | tail -1");
    assert_eq!(df.split_whitespace().nth(1), Some("65536"), "{df}");
    assert_eq!(exec("a", "reader", "ls -A /dev/shm"), format!("{tok}\n"));

    // Another pod, and the host, see none of it.
    assert_eq!(exec("b", "other", "ls -A /dev/shm"), "");
    let host = p.sd.sh_ok("ls -A /dev/shm");
    assert!(!host.lines().any(|l| l == tok), "{host}");

    // hostIPC: the host's /dev/shm.
    assert_eq!(
        exec("h", "hostipc", &format!("cat /dev/shm/{host_tok}")),
        "host\n"
    );
    p.sd.sh_ok(&format!("rm -f /dev/shm/{host_tok} /dev/shm/{tok}"));

    // Delete unmounts it with the rest of the pod.
    p.run_ok(&["delete", "a"]);
    let mounts = p.sd.sh_ok("grep -c default_a /proc/self/mountinfo || true");
    assert_eq!(mounts.trim(), "0", "mounts left behind");
    Ok(())
}
