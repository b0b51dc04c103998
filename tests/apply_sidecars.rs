//! Sidecars (init containers with `restartPolicy: Always`) on a real
//! systemd 252: they start in order before the app containers, run beside
//! them, count in READY as kubectl counts them, and stop after them.
mod support;

use support::podc::Podc;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A container script that logs `start NAME` and, on SIGTERM, `stop NAME`
/// to the shared order file.
fn logged(name: &str) -> String {
    format!(
        "trap 'echo stop {name} >> /s/order; exit 0' TERM; echo start {name} >> /s/order; while true; do sleep 0.1; done"
    )
}

#[test]
fn sidecars_start_before_the_apps_run_beside_them_and_stop_after_them() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("side", &["setup", "proxy", "tail", "app"]);
    p.sd.sh_ok("mkdir -p /run/shared");
    let mut y = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: side\nspec:\n  terminationGracePeriodSeconds: 5\n  volumes:\n  - name: s\n    hostPath: {path: /run/shared}\n  initContainers:\n",
    );
    // A plain init container between the two sidecars: it runs to
    // completion after the first sidecar started and before the second.
    let inits = [
        ("proxy", Some(logged("proxy"))),
        ("setup", None),
        ("tail", Some(logged("tail"))),
    ];
    for (name, script) in &inits {
        let (policy, script) = match script {
            Some(s) => ("    restartPolicy: Always\n", s.clone()),
            None => ("", "echo done setup >> /s/order".to_string()),
        };
        y.push_str(&format!(
            "  - name: {name}\n    image: busybox:1.36\n{policy}    command: [sh, -c, {}]\n    volumeMounts: [{{name: s, mountPath: /s}}]\n",
            serde_json::to_string(&script)?
        ));
    }
    y.push_str(&format!(
        "  containers:\n  - name: app\n    image: busybox:1.36\n    command: [sh, -c, {}]\n    volumeMounts: [{{name: s, mountPath: /s}}]\n",
        serde_json::to_string(&logged("app"))?
    ));
    p.manifest("/srv/side.yaml", &y);
    let out = p.apply_ok("/srv/side.yaml", &[]);
    // kubectl counts sidecars in READY: 2 sidecars + 1 app.
    assert!(
        out.contains("pod default/side created: Running 3/3 ready"),
        "{out}"
    );
    p.sd.sh_ok(
        "for i in $(seq 100); do grep -q 'start app' /run/shared/order && break; sleep 0.05; done",
    );
    let order = p.sd.sh_ok("cat /run/shared/order");
    assert_eq!(
        order, "start proxy\ndone setup\nstart tail\nstart app\n",
        "start order"
    );

    let table = p.run_ok(&["get", "pods", "side"]);
    assert!(table.contains("3/3"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "side", "-o", "json"]))?;
    let inits = json["status"]["initContainerStatuses"].as_array().unwrap();
    let by_name = |n: &str| inits.iter().find(|c| c["name"] == n).unwrap().clone();
    for sidecar in ["proxy", "tail"] {
        let c = by_name(sidecar);
        assert!(c["state"]["running"].is_object(), "{c}");
        assert_eq!(c["ready"], true, "{c}");
    }
    assert_eq!(
        by_name("setup")["state"]["terminated"]["reason"],
        "Completed"
    );
    // All four run beside each other: the sidecars' processes are alive.
    for unit in [
        "podc_default_side_proxy.service",
        "podc_default_side_tail.service",
    ] {
        assert_eq!(p.prop(unit, "ActiveState"), "active", "{unit}");
        assert_ne!(p.prop(unit, "MainPID"), "0", "{unit}");
    }

    // Delete: the app stops first, then the sidecars in reverse order.
    p.run_ok(&["delete", "side"]);
    let order = p.sd.sh_ok("cat /run/shared/order");
    let stops: Vec<&str> = order.lines().filter(|l| l.starts_with("stop")).collect();
    assert_eq!(stops, ["stop app", "stop tail", "stop proxy"], "{order}");
    Ok(())
}
