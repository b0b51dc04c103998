//! Pod semantics through `podc apply` on a real systemd 252: init order,
//! failing init containers, postStart ordering, the pod network, hostname
//! and /etc/hosts, what systemctl/journalctl show, and convergence after a
//! `kill -9` of podc mid-apply.
mod support;

use support::podc::{pod_yaml, show, Podc, LIBEXEC, TARGET_FLAGS};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn read(p: &Podc, path: &str) -> String {
    std::fs::read_to_string(p.sd.path(path)).unwrap_or_default()
}

#[test]
fn init_containers_run_in_order_then_the_app() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("chain", &["one", "two", "three", "app"]);
    p.sd.sh_ok("mkdir -p /run/shared");
    let mut y = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: chain\nspec:\n  terminationGracePeriodSeconds: 3\n  volumes:\n  - name: s\n    hostPath: {path: /run/shared}\n  initContainers:\n",
    );
    for (i, c) in ["one", "two", "three"].iter().enumerate() {
        y.push_str(&format!(
            "  - name: {c}\n    image: busybox:1.36\n    command: [sh, -c, 'sleep 0.{i}; echo {c} >> /s/order']\n    volumeMounts: [{{name: s, mountPath: /s}}]\n"
        ));
    }
    y.push_str("  containers:\n  - name: app\n    image: busybox:1.36\n    command: [sh, -c, 'echo app >> /s/order; exec sleep 1000']\n    volumeMounts: [{name: s, mountPath: /s}]\n");
    p.manifest("/srv/chain.yaml", &y);
    let out = p.apply_ok("/srv/chain.yaml", &[]);
    assert!(
        out.contains("pod default/chain created: Running 1/1 ready"),
        "{out}"
    );
    // The app may still be writing its line when apply returns.
    p.sd.sh_ok("for i in $(seq 100); do grep -q app /run/shared/order && break; sleep 0.05; done");
    assert_eq!(read(&p, "/run/shared/order"), "one\ntwo\nthree\napp\n");
    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "chain", "-o", "json"]))?;
    let inits = json["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits.len(), 3);
    for i in inits {
        assert_eq!(i["state"]["terminated"]["reason"], "Completed", "{i}");
        assert_eq!(i["state"]["terminated"]["exitCode"], 0, "{i}");
    }
    let cond = |t: &str| {
        json["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(cond("Initialized"), "True");
    assert_eq!(cond("Ready"), "True");
    Ok(())
}

#[test]
fn a_failed_init_container_fails_the_pod_under_never_and_is_retried_under_always() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    for (name, policy) in [("never", "Never"), ("always", "Always")] {
        p.rootfs(name, &["init", "app"]);
        p.manifest(
            &format!("/srv/{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 3\n  initContainers:\n  - name: init\n    image: busybox:1.36\n    command: [sh, -c, 'echo init says bye; exit 3']\n  containers:\n  - name: app\n    image: busybox:1.36\n    command: [sleep, '1000']\n"
            ),
        );
    }
    let out = p.apply("/srv/never.yaml", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains("pod default/never created: Init:Error 0/1 ready"),
        "{text}"
    );
    assert!(text.contains("container init (podc_default_never_init.service): Error, systemd Result=exit-code, exit status 3"), "{text}");
    assert!(text.contains("| init says bye"), "journal lines: {text}");
    // No app container ever started.
    assert_eq!(p.prop("podc_default_never_app.service", "InvocationID"), "");
    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "never", "-o", "json"]))?;
    assert_eq!(json["status"]["phase"], "Failed");

    // Always: the init container is retried (on-failure), the pod stays Pending.
    let out = p.apply("/srv/always.yaml", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains("pod default/always created: Init:CrashLoopBackOff"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "always", "-o", "json"]))?;
    assert_eq!(json["status"]["phase"], "Pending");
    assert_eq!(
        json["status"]["initContainerStatuses"][0]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    assert_eq!(
        p.prop("podc_default_always_app.service", "InvocationID"),
        ""
    );
    Ok(())
}

#[test]
fn post_start_of_container_one_completes_before_container_two_starts() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("hooks", &["first", "second"]);
    p.sd.sh_ok("mkdir -p /run/shared");
    p.manifest(
        "/srv/hooks.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hooks\nspec:\n  terminationGracePeriodSeconds: 3\n  volumes:\n  - name: s\n    hostPath: {path: /run/shared}\n  containers:\n  - name: first\n    image: busybox:1.36\n    command: [sleep, '1000']\n    volumeMounts: [{name: s, mountPath: /s}]\n    lifecycle:\n      postStart:\n        exec:\n          command: [sh, -c, 'sleep 0.5; hostname > /s/post-start']\n      preStop:\n        exec:\n          command: [sh, -c, 'echo bye > /s/pre-stop']\n  - name: second\n    image: busybox:1.36\n    command: [sh, -c, 'if test -s /s/post-start; then echo after > /s/second; else echo before > /s/second; fi; exec sleep 1000']\n    volumeMounts: [{name: s, mountPath: /s}]\n",
    );
    let out = p.apply_ok("/srv/hooks.yaml", &[]);
    assert!(out.contains("Running 2/2 ready"), "{out}");
    p.sd.sh_ok("for i in $(seq 100); do test -s /run/shared/second && break; sleep 0.05; done");
    assert_eq!(read(&p, "/run/shared/second"), "after\n");
    assert_eq!(
        read(&p, "/run/shared/post-start"),
        "hooks\n",
        "hook runs with the pod hostname"
    );
    // Delete: preStop runs before the stop signal.
    p.run_ok(&["delete", "hooks"]);
    assert_eq!(read(&p, "/run/shared/pre-stop"), "bye\n");
    Ok(())
}

#[test]
fn containers_share_localhost_hostname_and_hosts_and_show_up_in_systemctl_and_journal() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("net", &["server", "client"]);
    p.sd.sh_ok(
        "mkdir -p /var/lib/podc/pods/default_net/containers/server/rootfs/www && echo 'hello from server' > /var/lib/podc/pods/default_net/containers/server/rootfs/www/index.html",
    );
    p.manifest(
        "/srv/net.yaml",
        &pod_yaml(
            "net",
            "  hostname: box\n  hostAliases:\n  - ip: 10.1.2.3\n    hostnames: [foo.remote, bar.remote]\n",
            &[
                ("server", "echo serving; exec httpd -f -p 127.0.0.1:48080 -h /www"),
                (
                    "client",
                    "for i in $(seq 100); do wget -q -O /tmp/got http://127.0.0.1:48080/ && break; sleep 0.05; done; cat /tmp/got; exec sleep 1000",
                ),
            ],
        ),
    );
    let out = p.apply_ok("/srv/net.yaml", &[]);
    assert!(out.contains("Running 2/2 ready"), "{out}");

    // Every container: the pod hostname, the pod's /etc/hosts with the aliases.
    for c in ["server", "client"] {
        let got = p.run_ok(&[
            "exec",
            "net",
            "-c",
            c,
            "--",
            "sh",
            "-c",
            "hostname; cat /etc/hosts /etc/hostname",
        ]);
        assert!(got.starts_with("box\n"), "{c}: {got}");
        assert!(
            got.contains("# Kubernetes-managed hosts file."),
            "{c}: {got}"
        );
        assert!(
            got.contains("10.1.2.3\tfoo.remote\tbar.remote"),
            "{c}: {got}"
        );
        assert!(got.ends_with("box\n"), "{c}: /etc/hostname: {got}");
    }
    // 127.0.0.1 is the pod's: the client reads the server from inside...
    let got = p.run_ok(&[
        "exec",
        "net",
        "-c",
        "client",
        "--",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:48080/",
    ]);
    assert_eq!(got, "hello from server\n");
    // ...and the namespace's own loopback does not have it.
    assert!(!p
        .sd
        .sh("busybox wget -q -T 1 -O - http://127.0.0.1:48080/")
        .status
        .success());

    // logs / journalctl -u: the container's output under its unit.
    p.sd.sh_ok("for i in $(seq 100); do journalctl -o cat -u podc_default_net_client.service | grep -q 'hello from server' && break; sleep 0.05; done");
    let logs = p.run_ok(&["logs", "net", "-c", "client"]);
    assert!(logs.contains("hello from server"), "{logs}");
    let logs = p.run_ok(&["logs", "net", "-c", "server"]);
    assert!(logs.contains("serving"), "{logs}");
    let j =
        p.sd.sh_ok("journalctl --no-pager -u podc_default_net_server.service");
    assert!(
        j.contains("server[") && j.contains("serving"),
        "SyslogIdentifier is the container name: {j}"
    );
    // systemctl status of the pod's slice shows every process of the pod.
    let st =
        p.sd.sh("systemctl status --no-pager -l podc-default_net.slice");
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.contains("httpd -f -p 127.0.0.1:48080"), "{st}");
    assert!(st.contains("sleep 1000"), "{st}");
    assert!(st.contains("podc-pause"), "{st}");
    let st =
        p.sd.sh("systemctl status --no-pager podc_default_net_server.service");
    assert_eq!(st.status.code(), Some(0), "{}", show(&st));
    Ok(())
}

fn all_running(p: &Podc, n: usize) {
    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "-o", "json"])).unwrap();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), n, "{json}");
    for it in items {
        assert_eq!(it["status"]["phase"], "Running", "{it}");
    }
}

#[test]
fn kill_9_mid_apply_then_apply_again_converges() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    let names = ["k1", "k2", "k3"];
    for n in names {
        p.rootfs(n, &["a", "b"]);
    }
    let write = |version: u32| {
        for n in names {
            p.manifest(
                &format!("/srv/k/{n}.yaml"),
                &pod_yaml(
                    n,
                    "",
                    &[
                        ("a", &format!("echo v{version}; exec sleep 1000")),
                        ("b", "exec sleep 1000"),
                    ],
                ),
            );
        }
    };
    write(0);
    p.apply_ok("/srv/k", &[]);
    let flags = TARGET_FLAGS.join(" ");
    // Kill podc at different points of an apply that recreates every pod.
    for (round, delay) in ["0.02", "0.1", "0.2", "0.35", "0.6"].iter().enumerate() {
        write(round as u32 + 1);
        p.sd.sh_ok(&format!(
            "{LIBEXEC}/podc apply -f /srv/k {flags} >/dev/null 2>&1 & pid=$!; sleep {delay}; kill -9 $pid; wait $pid || true"
        ));
        let out = p.apply_ok("/srv/k", &[]);
        all_running(&p, 3);
        // Converged: the next apply changes nothing.
        let reloads = p.reloads();
        let again = p.apply_ok("/srv/k", &[]);
        assert_eq!(
            again.matches("unchanged: Running 2/2").count(),
            3,
            "round {round} after {delay}s:\n{out}\n{again}"
        );
        assert_eq!(p.reloads(), reloads);
        // Every unit file is whole and current; no temporary file is left.
        let left = p.sd.sh_ok("ls -a /etc/systemd/system /var/lib/podc /var/lib/podc/pods/* | grep -e '^\\.#' -e '.podc-' || true");
        assert_eq!(left.trim(), "", "{left}");
        for n in names {
            let unit = read(
                &p,
                &format!("/etc/systemd/system/podc_default_{n}_a.service"),
            );
            assert!(unit.contains(&format!("echo v{}", round + 1)), "{unit}");
        }
        let logs = p.run_ok(&["logs", "k1", "-c", "a"]);
        assert!(
            logs.contains(&format!("v{}", round + 1)),
            "the running container is the new one: {logs}"
        );
    }
    Ok(())
}

/// One pod, then ten in one apply, then the same ten again (nothing to
/// do). Timing is `bench/apply.sh`'s job, not this test's.
#[test]
fn one_pod_then_ten_in_one_apply_then_nothing_to_do() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    for n in 0..11 {
        p.rootfs(&format!("p{n}"), &["a", "b"]);
        let dir = if n == 0 { "/srv/one" } else { "/srv/ten" };
        p.manifest(
            &format!("{dir}/p{n}.yaml"),
            &pod_yaml(
                &format!("p{n}"),
                "",
                &[("a", "exec sleep 1000"), ("b", "exec sleep 1000")],
            ),
        );
    }
    let out = p.apply_ok("/srv/one", &[]);
    assert!(
        out.contains("pod default/p0 created: Running 2/2 ready"),
        "{out}"
    );
    let out = p.apply_ok("/srv/ten", &[]);
    assert_eq!(
        out.matches("created: Running 2/2 ready").count(),
        10,
        "{out}"
    );
    let reloads = p.reloads();
    let again = p.apply_ok("/srv/ten", &[]);
    assert_eq!(
        p.reloads(),
        reloads,
        "no daemon-reload when nothing changed"
    );
    assert_eq!(
        again.matches("unchanged: Running 2/2 ready").count(),
        10,
        "{again}"
    );
    Ok(())
}
