//! Restart policies, shared PID namespace, argv bytes and the grace
//! period, through `podc apply` on a real systemd 252.
mod support;

use support::podc::{pod_yaml, show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn pod_json(p: &Podc, name: &str) -> serde_json::Value {
    serde_json::from_str(&p.run_ok(&["get", "pods", name, "-o", "json"])).unwrap()
}

#[test]
fn restart_policies_with_exit_1_and_exit_0() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    // (pod, policy, exit code) → (apply ok, phase, container state, reason)
    let cases = [
        (
            "never-0",
            "Never",
            0,
            true,
            "Succeeded",
            "terminated",
            "Completed",
        ),
        (
            "never-1",
            "Never",
            1,
            false,
            "Failed",
            "terminated",
            "Error",
        ),
        (
            "onfailure-0",
            "OnFailure",
            0,
            true,
            "Succeeded",
            "terminated",
            "Completed",
        ),
        (
            "onfailure-1",
            "OnFailure",
            1,
            false,
            "Running",
            "waiting",
            "CrashLoopBackOff",
        ),
        (
            "always-0",
            "Always",
            0,
            false,
            "Running",
            "waiting",
            "CrashLoopBackOff",
        ),
        (
            "always-1",
            "Always",
            1,
            false,
            "Running",
            "waiting",
            "CrashLoopBackOff",
        ),
    ];
    for (name, policy, code, ..) in cases {
        p.rootfs(name, &["c"]);
        p.manifest(
            &format!("/srv/{name}.yaml"),
            &pod_yaml(
                name,
                &format!("  restartPolicy: {policy}\n"),
                &[("c", &format!("echo bye; exit {code}"))],
            ),
        );
    }
    for (name, _, code, ok, phase, state, reason) in cases {
        let out = p.apply(&format!("/srv/{name}.yaml"), &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{text}");
        // apply may return while the container still runs (Running is a
        // settled state); the test then waits for its exit.
        let unit = format!("podc_default_{name}_c.service");
        p.sd.sh_ok(&format!("for i in $(seq 100); do case $(systemctl show -P SubState {unit}) in dead|failed|auto-restart) break;; esac; sleep 0.05; done"));
        let j = pod_json(&p, name);
        assert_eq!(j["status"]["phase"], phase, "{name}: {j}");
        let c = &j["status"]["containerStatuses"][0];
        assert_eq!(c["state"][state]["reason"], reason, "{name}: {c}");
        if state == "terminated" {
            assert_eq!(c["state"]["terminated"]["exitCode"], code, "{name}: {c}");
        } else {
            // Waiting to restart: the last run's exit code is kept.
            assert_eq!(
                c["lastState"]["terminated"]["exitCode"], code,
                "{name}: {c}"
            );
        }
        let _ = (ok, show(&out));
        // Applying the finished pod again reports its final state.
        let again = p.apply(&format!("/srv/{name}.yaml"), &[]);
        assert_eq!(again.status.success(), ok, "{name}: {}", show(&again));
    }
    // systemd restarts it after RestartSec= (10 s on 252): NRestarts counts.
    p.sd.sh_ok("for i in $(seq 150); do [ \"$(systemctl show -P NRestarts podc_default_always-1_c.service)\" -ge 1 ] && break; sleep 0.1; done");
    let j = pod_json(&p, "always-1");
    assert!(
        j["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1),
        "{j}"
    );
    let table = p.run_ok(&["get", "pods"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("never-0") && l.contains("Completed")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("never-1") && l.contains("Error")),
        "{table}"
    );
    Ok(())
}

/// A command that exits at once keeps its exit status: the joiner holds
/// the container process back until systemd has confirmed it as the main
/// process of the `Type=notify` unit (`MAINPID=`, then a notify barrier).
/// Without that, systemd 252 never saw the exit and said `Result=success`.
#[test]
fn a_fast_exit_keeps_its_status() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("fast", &["c"]);
    p.manifest(
        "/srv/fast.yaml",
        &pod_yaml("fast", "  restartPolicy: Never\n", &[("c", "exit 1")]),
    );
    let out = p.apply("/srv/fast.yaml", &[]);
    p.sd.sh_ok("for i in $(seq 100); do case $(systemctl show -P SubState podc_default_fast_c.service) in dead|failed) break;; esac; sleep 0.05; done");
    assert_eq!(p.prop("podc_default_fast_c.service", "Result"), "exit-code");
    let j = pod_json(&p, "fast");
    assert_eq!(j["status"]["phase"], "Failed", "{j}");
    assert_eq!(
        j["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 1,
        "{j}"
    );
    let again = p.apply("/srv/fast.yaml", &[]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}\n{}",
        show(&out),
        show(&again)
    );
    Ok(())
}

#[test]
fn share_process_namespace_on_and_off() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    for (name, share) in [("shared", true), ("apart", false)] {
        p.rootfs(name, &["app", "side"]);
        p.manifest(
            &format!("/srv/{name}.yaml"),
            &pod_yaml(
                name,
                &format!("  shareProcessNamespace: {share}\n"),
                &[("app", "exec sleep 1001"), ("side", "exec sleep 1002")],
            ),
        );
        p.apply_ok(&format!("/srv/{name}.yaml"), &[]);
    }
    let ps = p.run_ok(&["exec", "shared", "-c", "side", "--", "ps", "-o", "pid,args"]);
    assert!(
        ps.contains("sleep 1001") && ps.contains("sleep 1002"),
        "shared: {ps}"
    );
    let ps = p.run_ok(&["exec", "apart", "-c", "side", "--", "ps", "-o", "pid,args"]);
    assert!(
        !ps.contains("sleep 1001") && ps.contains("sleep 1002"),
        "apart: {ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep", "1002"]),
        "own PID namespace, command is PID 1: {ps}"
    );
    Ok(())
}

#[test]
fn argv_reaches_the_process_byte_for_byte() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("argv", &["c"]);
    let args = [
        "plain",
        "two words",
        "it's \"quoted\"",
        "back\\slash \\n not a newline",
        "$HOME ${PATH} $$ $(NOPE) $$(HOME) %n %% %",
        "new\nline\ttab",
        "",
        "semi;colon & pipe | star *",
    ];
    let json_args = serde_json::to_string(&args)?;
    p.manifest(
        "/srv/argv.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: argv\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sleep, '1000']\n    args: {json_args}\n"
        ),
    );
    // busybox sleep rejects the extra arguments; wrap it so it keeps running.
    p.manifest(
        "/srv/argv.yaml",
        &std::fs::read_to_string(p.sd.path("/srv/argv.yaml"))?.replace(
            "command: [sleep, '1000']",
            "command: [sh, -c, 'exec sleep 1000', argv0]",
        ),
    );
    p.apply_ok("/srv/argv.yaml", &[]);
    let pid = p.prop("podc_default_argv_c.service", "MainPID");
    // The shell exec'd sleep, which keeps no argv: read the shell's
    // arguments from the unit's ExecStart instead and from a process that
    // keeps them.
    let _ = pid;
    p.manifest(
        "/srv/argv.yaml",
        &std::fs::read_to_string(p.sd.path("/srv/argv.yaml"))?.replace(
            "command: [sh, -c, 'exec sleep 1000', argv0]",
            "command: [sh, -c, 'while :; do sleep 1000; done', argv0]",
        ),
    );
    p.apply_ok("/srv/argv.yaml", &[]);
    let pid = p.prop("podc_default_argv_c.service", "MainPID");
    let cmdline = std::fs::read(p.sd.path(format!("/proc/{pid}/cmdline")))?;
    let mut want: Vec<u8> = Vec::new();
    // Kubernetes' own expansion happened first: `$$` is an escaped `$`,
    // `$$(HOME)` the literal `$(HOME)`, unknown `$(NOPE)` stays; systemd
    // must then change nothing (no `$VAR`, `%` specifier or C escape).
    let expanded: Vec<String> = args
        .iter()
        .map(|a| a.replace("$$ $(NOPE) $$(HOME)", "$ $(NOPE) $(HOME)"))
        .collect();
    for a in ["sh", "-c", "while :; do sleep 1000; done", "argv0"]
        .iter()
        .copied()
        .chain(expanded.iter().map(String::as_str))
    {
        want.extend_from_slice(a.as_bytes());
        want.push(0);
    }
    assert_eq!(
        String::from_utf8_lossy(&cmdline),
        String::from_utf8_lossy(&want),
        "argv of the container's main process"
    );
    Ok(())
}

#[test]
fn pre_stop_past_the_grace_period_is_killed_at_the_deadline() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("slow", &["c"]);
    p.sd.sh_ok("mkdir -p /run/shared");
    p.manifest(
        "/srv/slow.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: slow\nspec:\n  terminationGracePeriodSeconds: 2\n  volumes:\n  - name: s\n    hostPath: {path: /run/shared}\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'trap \"echo term >> /s/log; exit 0\" TERM; while :; do sleep 0.1; done']\n    volumeMounts: [{name: s, mountPath: /s}]\n    lifecycle:\n      preStop:\n        exec:\n          command: [sh, -c, 'echo prestop >> /s/log; sleep 30; echo late >> /s/log']\n",
    );
    p.apply_ok("/srv/slow.yaml", &[]);
    let t0 = std::time::Instant::now();
    p.run_ok(&["delete", "slow"]);
    let took = t0.elapsed().as_secs_f64();
    println!("delete with a preStop sleeping past a 2 s grace period took {took:.2} s");
    let log = std::fs::read_to_string(p.sd.path("/run/shared/log"))?;
    assert!(log.starts_with("prestop\n"), "{log}");
    assert!(!log.contains("late"), "preStop was not cut off: {log}");
    assert!(
        (1.9..10.0).contains(&took),
        "stopped at the grace deadline, took {took}"
    );
    Ok(())
}

/// App containers start one after another but stop together, as in
/// Kubernetes (the stop signal goes to every app container at once), and
/// sidecars stop after all of them. Each app container takes 2 s to stop
/// (a TERM trap that sleeps): one after the other would take ~4 s.
#[test]
fn app_containers_stop_together_and_sidecars_after_them() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("stops", &["side", "a", "b"]);
    // `echo armed` once the trap is set: the test waits for it, since a
    // unit is active (and apply returns) before its shell reads line one.
    let slow = "trap 'sleep 2; exit 0' TERM; echo armed; while :; do sleep 0.1; done";
    let quick = "trap 'exit 0' TERM; echo armed; while :; do sleep 0.1; done";
    let c = |name: &str, script: &str| {
        format!(
            "  - name: {name}\n    image: busybox:1.36\n    command: [\"sh\", \"-c\", {}]\n",
            serde_json::to_string(script).unwrap()
        )
    };
    p.manifest(
        "/srv/stops.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: stops\nspec:\n  terminationGracePeriodSeconds: 10\n  initContainers:\n{}    restartPolicy: Always\n  containers:\n{}{}",
            c("side", quick),
            c("a", slow),
            c("b", slow)
        ),
    );
    p.apply_ok("/srv/stops.yaml", &[]);
    let unit = |c: &str| format!("podc_default_stops_{c}.service");
    let us = |c: &str, prop: &str| -> i64 {
        p.prop(&unit(c), prop)
            .parse()
            .unwrap_or_else(|_| panic!("{c} {prop}"))
    };
    // Start order kept: b starts once a is up (and a once the sidecar is).
    assert!(
        us("b", "ExecMainStartTimestampMonotonic") >= us("a", "ActiveEnterTimestampMonotonic"),
        "b started before a was up"
    );
    assert!(
        us("a", "ExecMainStartTimestampMonotonic") >= us("side", "ActiveEnterTimestampMonotonic"),
        "a started before the sidecar was up"
    );
    for c in ["side", "a", "b"] {
        p.sd.sh_ok(&format!(
            "for i in $(seq 200); do journalctl --no-pager -o cat -u {} | grep -qx armed && exit 0; sleep 0.05; done; exit 1",
            unit(c)
        ));
    }
    // Stop the pod as apply and delete do: every service and the target.
    p.sd.sh_ok(&format!(
        "systemctl stop podc_default_stops.target podc_default_stops.service {} {} {}",
        unit("side"),
        unit("a"),
        unit("b")
    ));
    // When each began stopping and was stopped, from systemd's journal
    // lines (the stopped units may be unloaded already, and their
    // timestamp properties with them).
    let when = |c: &str, what: &str| -> i64 {
        let out = p.sd.sh_ok(&format!(
            "for i in $(seq 100); do l=$(journalctl --no-pager -o short-unix -u {u} | grep -m1 'systemd\\[1\\]: {what} {u}'); \
             [ -n \"$l\" ] && {{ echo \"$l\"; exit 0; }}; sleep 0.05; done; exit 1",
            u = unit(c)
        ));
        let secs: f64 = out
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{c} {what}: {out}"));
        (secs * 1e6) as i64
    };
    let (a_exit, b_exit) = (when("a", "Stopping"), when("b", "Stopping"));
    let (a_in, b_in) = (when("a", "Stopped"), when("b", "Stopped"));
    let ms = |x: i64| x / 1000;
    println!(
        "a stopping 0 ms → stopped {} ms, b stopping {} ms → stopped {} ms (relative to a)",
        ms(a_in - a_exit),
        ms(b_exit - a_exit),
        ms(b_in - a_exit)
    );
    for (c, exit, inactive) in [("a", a_exit, a_in), ("b", b_exit, b_in)] {
        assert!(
            inactive - exit >= 1_800_000,
            "{c} stopped in {} ms: its TERM trap did not run",
            ms(inactive - exit)
        );
    }
    assert!(
        (a_exit - b_exit).abs() < 1_000_000,
        "a and b began stopping {} ms apart: one after the other",
        ms((a_exit - b_exit).abs())
    );
    assert!(
        a_in.max(b_in) - a_exit.min(b_exit) < 3_500_000,
        "stopping both took {} ms",
        ms(a_in.max(b_in) - a_exit.min(b_exit))
    );
    assert!(
        when("side", "Stopping") >= a_in.max(b_in),
        "the sidecar began stopping before the app containers were down"
    );
    Ok(())
}

/// The stop signal goes to the container's main process only, as container
/// runtimes send it (systemd's default KillMode would signal every process
/// of the unit); the rest dies with it.
#[test]
fn the_stop_signal_reaches_only_the_main_process() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("sig", &["app"]);
    p.sd.sh_ok("mkdir -p /run/sig");
    // The main process lingers 1 s after TERM, so that a child that was
    // signalled too (KillMode=control-group) has time to log it before
    // the PID namespace dies with its PID 1.
    let script = "(trap 'echo child got TERM >> /s/log; exit 0' TERM; echo child armed >> /s/log; while :; do sleep 0.1; done) & \
                  trap 'echo main got TERM >> /s/log; sleep 1; exit 0' TERM; echo main armed >> /s/log; while :; do sleep 0.1; done";
    p.manifest(
        "/srv/sig.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sig\nspec:\n  terminationGracePeriodSeconds: 5\n  volumes:\n  - name: s\n    hostPath: {{path: /run/sig}}\n  containers:\n  - name: app\n    image: busybox:1.36\n    command: [sh, -c, {}]\n    volumeMounts: [{{name: s, mountPath: /s}}]\n",
            serde_json::to_string(script)?
        ),
    );
    p.apply_ok("/srv/sig.yaml", &[]);
    p.sd.sh_ok("for i in $(seq 200); do [ $(grep -c armed /run/sig/log) = 2 ] && exit 0; sleep 0.05; done; exit 1");
    p.run_ok(&["delete", "sig"]);
    let log = p.sd.sh_ok("cat /run/sig/log");
    assert!(log.contains("main got TERM"), "{log}");
    assert!(!log.contains("child got TERM"), "{log}");
    // The child did not outlive the container.
    let left = p.sd.sh("pgrep -f 'child got TER[M]'");
    assert!(!left.status.success(), "a process survived the stop");
    Ok(())
}
