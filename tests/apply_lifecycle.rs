//! `podc apply` / `get` / `delete` on a real systemd 252: idempotency,
//! recreating only what changed, deleting without leftovers.
mod support;

use support::podc::{pod_yaml, show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn units(pod: &str, containers: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("podc_default_{pod}.target"),
        format!("podc_default_{pod}.service"),
    ];
    v.extend(
        containers
            .iter()
            .map(|c| format!("podc_default_{pod}_{c}.service")),
    );
    v
}

#[test]
fn apply_twice_restarts_nothing_and_a_change_recreates_only_that_pod() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("a", &["web", "side"]);
    p.rootfs("b", &["main"]);
    let a = pod_yaml(
        "a",
        "",
        &[
            ("web", "echo web up; exec sleep 1000"),
            ("side", "exec sleep 1000"),
        ],
    );
    let b = pod_yaml("b", "", &[("main", "exec sleep 1000")]);
    p.manifest("/srv/m/a.yaml", &a);
    p.manifest("/srv/m/b.yaml", &b);

    let t0 = std::time::Instant::now();
    let out = p.apply_ok("/srv/m", &[]);
    println!(
        "first apply (2 pods, 3 containers) took {} ms:\n{out}",
        t0.elapsed().as_millis()
    );
    assert!(
        out.contains("pod default/a created: Running 2/2 ready"),
        "{out}"
    );
    assert!(
        out.contains("pod default/b created: Running 1/1 ready"),
        "{out}"
    );
    // Persistent install: enabled so the pods come back after a reboot.
    assert_eq!(p.prop("podc_default_a.target", "UnitFileState"), "enabled");
    assert!(p
        .sd
        .path("/etc/systemd/system/multi-user.target.wants/podc_default_a.target")
        .symlink_metadata()
        .is_ok());

    let ua = units("a", &["web", "side"]);
    let ub = units("b", &["main"]);
    let ids_a = p.invocations(&ua);
    let ids_b = p.invocations(&ub);
    assert!(
        ids_a.iter().chain(&ids_b).all(|i| i.len() == 32),
        "{ids_a:?} {ids_b:?}"
    );
    let reloads = p.reloads();

    // Same manifests again: nothing restarts, no reload.
    let t0 = std::time::Instant::now();
    let out = p.apply_ok("/srv/m", &[]);
    println!(
        "idempotent apply took {} ms:\n{out}",
        t0.elapsed().as_millis()
    );
    assert!(
        out.contains("pod default/a unchanged: Running 2/2 ready"),
        "{out}"
    );
    assert!(out.contains("pod default/b unchanged"), "{out}");
    assert_eq!(p.invocations(&ua), ids_a);
    assert_eq!(p.invocations(&ub), ids_b);
    assert_eq!(p.reloads(), reloads, "an unchanged apply must not reload");

    // diff: same → exit 0; after a change → exit 1 with the unit diff.
    let d = p.run(&[&["diff", "-f", "/srv/m"][..], &support::podc::TARGET_FLAGS].concat());
    assert_eq!(d.status.code(), Some(0), "{}", show(&d));
    p.manifest("/srv/m/a.yaml", &a.replace("echo web up", "echo web v2"));
    let d = p.run(&[&["diff", "-f", "/srv/m"][..], &support::podc::TARGET_FLAGS].concat());
    assert_eq!(d.status.code(), Some(1), "{}", show(&d));
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(
        text.contains("--- a/etc/systemd/system/podc_default_a_web.service"),
        "{text}"
    );
    assert!(
        text.contains("+++ b/etc/systemd/system/podc_default_a_web.service"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('-') && l.contains("echo web up")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('+') && l.contains("echo web v2")),
        "{text}"
    );
    // --dry-run prints the plan and touches nothing.
    let out = p.apply_ok("/srv/m", &["--dry-run"]);
    assert!(out.contains("pod default/a would be recreated"), "{out}");
    assert!(out.contains("pod default/b unchanged"), "{out}");
    assert_eq!(p.invocations(&ua), ids_a);
    assert_eq!(p.reloads(), reloads);

    // Apply the change: only pod a is recreated, with exactly one reload.
    let out = p.apply_ok("/srv/m", &[]);
    println!("{out}");
    assert!(
        out.contains("pod default/a recreated: Running 2/2 ready"),
        "{out}"
    );
    assert!(out.contains("pod default/b unchanged"), "{out}");
    let new_a = p.invocations(&ua);
    for (old, new) in ids_a.iter().zip(&new_a) {
        assert_ne!(old, new, "every unit of the changed pod restarts");
    }
    assert_eq!(p.invocations(&ub), ids_b, "the other pod is left alone");
    assert_eq!(p.reloads(), reloads + 1, "exactly one daemon-reload");

    // get pods: the kubectl table, JSON shaped like a Pod with PodStatus.
    let table = p.run_ok(&["get", "pods"]);
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let row_a: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row_a[..4], ["a", "2/2", "Running", "0"], "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "a", "-o", "json"]))?;
    assert_eq!(json["kind"], "Pod");
    assert_eq!(json["status"]["phase"], "Running");
    assert_eq!(json["status"]["containerStatuses"][0]["name"], "web");
    assert!(json["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].is_string());
    let ready = json["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["status"]
        .clone();
    assert_eq!(ready, "True");
    let yaml = p.run_ok(&["get", "pods", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: \"List\"") && yaml.contains("phase: \"Running\""),
        "{yaml}"
    );
    let desc = p.run_ok(&["describe", "pod", "a"]);
    assert!(desc.contains("Status:       Running"), "{desc}");
    assert!(desc.contains("web v2"), "journal lines in describe: {desc}");

    // --prune without b in the input stops and removes b.
    p.sd.sh_ok("rm /srv/m/b.yaml");
    let out = p.apply_ok("/srv/m", &["--prune"]);
    assert!(out.contains("pod default/b pruned"), "{out}");
    assert!(out.contains("pod default/a unchanged"), "{out}");
    assert!(!p
        .sd
        .path("/etc/systemd/system/podc_default_b.target")
        .exists());
    assert_eq!(p.invocations(&ua), new_a);
    Ok(())
}

#[test]
fn delete_leaves_nothing_behind() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("gone", &["app"]);
    p.manifest(
        "/srv/gone.yaml",
        &(String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gone-cfg\ndata:\n  greeting: hello from a configmap\n---\n",
        ) + &pod_yaml(
            "gone",
            "  shareProcessNamespace: true\n  volumes:\n  - name: scratch\n    emptyDir: {}\n  - name: mem\n    emptyDir: {medium: Memory}\n  - name: cfg\n    configMap: {name: gone-cfg, defaultMode: 0640}\n  - name: made\n    hostPath: {path: /run/made-by-podc, type: DirectoryOrCreate}\n",
            &[("app", "exec sleep 1000")],
        )
        .replace(
            "    command:",
            "    volumeMounts: [{name: scratch, mountPath: /scratch}, {name: mem, mountPath: /mem}, {name: cfg, mountPath: /cfg}, {name: made, mountPath: /made}]\n    command:",
        )),
    );
    p.apply_ok("/srv/gone.yaml", &[]);
    assert!(p.sd.path("/run/podc/pods/default_gone/ns/net").exists());
    // Volumes as the infra unit's `podc volumes setup` prepared them.
    let got = p.run_ok(&[
        "exec", "gone", "--", "sh", "-c",
        "cat /cfg/greeting; echo; stat -c %a /cfg/greeting /scratch /mem; touch /scratch/x /mem/y /made/z && echo writable",
    ]);
    assert_eq!(got, "hello from a configmap\n640\n777\n777\nwritable\n");
    let before = p.sd.sh_ok("cat /proc/self/mountinfo");
    assert!(
        before.contains("default_gone"),
        "pod mounts exist while running"
    );

    let out = p.run_ok(&["delete", "gone"]);
    assert!(out.contains("pod default/gone deleted"), "{out}");
    // No unit file, enable link, state, runtime dir, mount or loaded unit.
    let left = p.sd.sh_ok(
        "find /etc/systemd/system /run/systemd/system /var/lib/podc/pods /run/podc 2>/dev/null | grep -i gone || true",
    );
    assert_eq!(left.trim(), "", "files left behind:\n{left}");
    let mounts = p.sd.sh_ok("cat /proc/self/mountinfo");
    assert!(
        !mounts.contains("default_gone"),
        "mounts left behind:\n{mounts}"
    );
    let loaded =
        p.sd.sh_ok("systemctl list-units --all --no-legend --plain 'podc*' | grep gone || true");
    assert_eq!(loaded.trim(), "", "units still loaded:\n{loaded}");
    let inv = p.sd.sh_ok("cat /var/lib/podc/inventory.json");
    assert!(!inv.contains("gone"), "{inv}");
    let out = p.run(&["delete", "gone"]);
    assert_eq!(out.status.code(), Some(1), "deleting again: not found");
    Ok(())
}

#[test]
fn apply_installs_a_podc_build_and_runtime_pods_go_under_run() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("built", &["app"]);
    p.rootfs("eph", &["app"]);
    p.manifest(
        "/srv/built/pod.yaml",
        &pod_yaml("built", "", &[("app", "exec sleep 1000")]),
    );
    let mut build = vec!["build", "/srv/built", "-o", "/srv/out"];
    build.extend(support::podc::TARGET_FLAGS);
    p.run_ok(&build);
    // No -f: install what `podc build` wrote (--build DIR, default ./build).
    let out = p.run_ok(&["apply", "--build", "/srv/out"]);
    assert!(
        out.contains("pod default/built created: Running 1/1 ready"),
        "{out}"
    );
    let same = p.run_ok(&["apply", "--build", "/srv/out"]);
    assert!(same.contains("pod default/built unchanged"), "{same}");
    // A build whose files were edited after the fact is refused.
    p.sd.sh_ok("echo '# edited' >> /srv/out/units/podc_default_built_app.service");
    let bad = p.run(&["apply", "--build", "/srv/out"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));

    // --runtime: units under /run/systemd/system, not enabled.
    p.manifest(
        "/srv/eph.yaml",
        &pod_yaml("eph", "", &[("app", "exec sleep 1000")]),
    );
    let out = p.apply_ok("/srv/eph.yaml", &["--runtime"]);
    assert!(
        out.contains("pod default/eph created: Running 1/1 ready"),
        "{out}"
    );
    assert!(p
        .sd
        .path("/run/systemd/system/podc_default_eph.target")
        .exists());
    assert!(!p
        .sd
        .path("/etc/systemd/system/podc_default_eph.target")
        .exists());
    assert!(p
        .sd
        .path("/etc/systemd/system/multi-user.target.wants/podc_default_eph.target")
        .symlink_metadata()
        .is_err());
    // The persistent pod moved to --runtime: units under /run, no enable link left.
    let mut moved = vec!["apply", "-f", "/srv/built", "--runtime"];
    moved.extend(support::podc::TARGET_FLAGS);
    let out = p.run_ok(&moved);
    assert!(
        out.contains("pod default/built recreated: Running 1/1 ready"),
        "{out}"
    );
    assert!(p
        .sd
        .path("/run/systemd/system/podc_default_built.target")
        .exists());
    assert!(!p
        .sd
        .path("/etc/systemd/system/podc_default_built.target")
        .exists());
    assert!(p
        .sd
        .path("/etc/systemd/system/multi-user.target.wants/podc_default_built.target")
        .symlink_metadata()
        .is_err());
    p.run_ok(&["delete", "eph"]);
    assert!(!p
        .sd
        .path("/run/systemd/system/podc_default_eph.target")
        .exists());
    let table = p.run_ok(&["get", "pods"]);
    assert!(table.contains("built") && !table.contains("eph"), "{table}");
    Ok(())
}
