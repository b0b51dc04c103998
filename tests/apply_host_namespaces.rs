//! hostNetwork, hostPID and workingDir in pods started by `podc apply` on a
//! real systemd 252, each against a pod without them. (hostIPC is in
//! `apply_shm.rs`.)
mod support;

use support::podc::Podc;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const REPORT: &str = "{ echo pid1=$(cat /proc/1/comm); echo host=$(hostname); \
    echo nets=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '); echo pwd=$(pwd); } > /s/$P.tmp; \
    mv /s/$P.tmp /s/$P; exec sleep 1000";

fn pod(name: &str, spec: &str) -> Result<String> {
    Ok(format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{spec}  volumes:\n  - name: s\n    hostPath: {{path: /run/hn}}\n  containers:\n  - name: c\n    image: busybox:1.36\n    workingDir: /etc\n    env: [{{name: P, value: {name}}}]\n    command: [sh, -c, {}]\n    volumeMounts: [{{name: s, mountPath: /s}}]\n",
        serde_json::to_string(REPORT)?
    ))
}

#[test]
fn host_network_host_pid_and_working_dir() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.sd.sh_ok("mkdir -p /run/hn");
    p.rootfs("own", &["c"]);
    p.rootfs("host", &["c"]);
    let y = format!(
        "{}---\n{}",
        pod("own", "")?,
        pod("host", "  hostNetwork: true\n  hostPID: true\n")?
    );
    p.manifest("/srv/hn.yaml", &y);
    let out = p.apply_ok("/srv/hn.yaml", &[]);
    assert_eq!(out.matches("Running 1/1 ready").count(), 2, "{out}");
    let report = |pod: &str| {
        p.sd.sh_ok(&format!(
            "for i in $(seq 100); do [ -s /run/hn/{pod} ] && break; sleep 0.05; done; cat /run/hn/{pod}"
        ))
    };
    let field = |r: &str, k: &str| {
        r.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let host_nets =
        p.sd.sh_ok("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '");
    let host_name = p.sd.sh_ok("hostname");

    // Its own namespaces: PID 1 is the container's command, only `lo`, the
    // pod's hostname.
    let own = report("own");
    assert_eq!(field(&own, "pid1"), "sh", "{own}");
    assert_eq!(field(&own, "nets"), "lo", "{own}");
    assert_eq!(field(&own, "host"), "own", "{own}");
    assert_eq!(field(&own, "pwd"), "/etc", "{own}");

    // The host's: PID 1 is the host's init, the host's interfaces and name.
    let host = report("host");
    assert_eq!(field(&host, "pid1"), "systemd", "{host}");
    assert_eq!(field(&host, "nets"), host_nets.trim(), "{host}");
    assert!(field(&host, "nets").split(' ').count() > 1, "{host}");
    assert_eq!(field(&host, "host"), host_name.trim(), "{host}");
    assert_eq!(field(&host, "pwd"), "/etc", "{host}");
    Ok(())
}
