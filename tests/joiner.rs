//! The UTS/PID joiner on a real systemd, inside busybox container roots
//! (`RootDirectory=`), with the unit directives podc will render.
mod support;

use support::helper::static_podc_pause;
use support::systemd::Systemd;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const PAUSE: &str = "/run/podc-test/podc-pause";

/// A container unit of pod `pod`: its own busybox root, the pod's files and
/// ns dir and the static helper bound in, the command run through the joiner.
fn container(pod: &str, name: &str, join_args: &str, script: &str, typ: &str) -> String {
    // podc renders Type=notify (the joiner names the main PID itself);
    // an older podc's Type=forking container waits, stopped, until its
    // first ExecStartPost= releases it.
    let release = if typ == "forking" {
        "ExecStartPost=/.podc/podc-pause release ${MAINPID}\n"
    } else {
        ""
    };
    format!(
        "[Unit]\nBindsTo={pod}-infra.service\nAfter={pod}-infra.service\n\n[Service]\n\
         Type={typ}\n\
         NetworkNamespacePath=/run/podc/pods/{pod}/ns/net\n\
         IPCNamespacePath=/run/podc/pods/{pod}/ns/ipc\n\
         RootDirectory=/var/lib/podc/rootfs/{name}\n\
         MountAPIVFS=yes\nNoNewPrivileges=yes\nProtectKernelTunables=yes\nProtectKernelModules=yes\n\
         BindReadOnlyPaths={PAUSE}:/.podc/podc-pause /run/podc/pods/{pod}:/.podc/pod\n\
         BindReadOnlyPaths=/run/podc/pods/{pod}/hosts:/etc/hosts /run/podc/pods/{pod}/hostname:/etc/hostname\n\
         BindPaths=/run/jtest-out:/out\n\
         ExecStart=/.podc/podc-pause join --uts /.podc/pod/ns/uts {join_args} -- /bin/sh -c '{script}'\n{release}"
    )
}

fn prop(sd: &Systemd, unit: &str, p: &str) -> String {
    sd.sh_ok(&format!("systemctl show -P {p} {unit}"))
        .trim()
        .to_string()
}

#[test]
fn joiner_gives_pod_hostname_pid_namespace_and_user_under_root_directory() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    let pause = static_podc_pause();
    sd.copy_in(&pause, PAUSE)?;
    sd.sh_ok("mkdir -p /run/jtest-out && chmod 1777 /run/jtest-out");
    for c in ["app", "side", "solo", "fail", "fastfail", "hooked"] {
        sd.busybox_rootfs(&format!("/var/lib/podc/rootfs/{c}"));
    }
    let pod = "jp";
    sd.write_unit(
        &format!("{pod}-infra.service"),
        &format!("[Service]\nType=notify\nExecStart={PAUSE} --pod-id {pod} --hostname jp-host --pid --host-alias 10.1.2.3=foo.remote\n"),
    )?;
    // shareProcessNamespace: app (dropped to nobody) and side join the pod's PID ns.
    sd.write_unit(
        "jp-app.service",
        &container(pod, "app", "--pid /.podc/pod/ns/pid --user 65534:65534",
            "hostname > /out/app.hostname; echo \"[$$NOTIFY_SOCKET]\" > /out/app.notify; id -u > /out/app.uid; cat /etc/hosts > /out/app.hosts; echo $$ > /out/app.pid; exec sleep 1000",
            "notify"),
    )?;
    sd.write_unit(
        "jp-side.service",
        &container(pod, "side", "--pid /.podc/pod/ns/pid",
            "hostname > /out/side.hostname; while ! test -s /out/app.pid; do sleep 0.05; done; ps -o pid,user,args > /out/side.ps; exec sleep 1000",
            "notify").replace("After=", "After=jp-app.service "),
    )?;
    // Kubernetes' default capabilities for a root container.
    let k8s_caps = "CHOWN,DAC_OVERRIDE,FSETID,FOWNER,MKNOD,NET_RAW,SETGID,SETUID,SETFCAP,SETPCAP,NET_BIND_SERVICE,SYS_CHROOT,KILL,AUDIT_WRITE";
    // No shareProcessNamespace: a PID namespace of its own, command is PID 1.
    sd.write_unit(
        "jp-solo.service",
        &container(pod, "solo", &format!("--new-pid --caps {k8s_caps}"),
            // As PID 1 of its namespace it gets no default SIGTERM action (as in
            // Kubernetes without shareProcessNamespace), so it traps TERM.
            "hostname > /out/solo.hostname; grep CapBnd /proc/self/status > /out/solo.caps; (echo x > /proc/sys/kernel/domainname) 2> /out/solo.sysctl; ps -o pid,args > /out/solo.ps; trap \"exit 0\" TERM; sleep 1000 & wait", "notify"),
    )?;
    // Hooks run through the joiner in the container's namespaces, found by
    // $MAINPID; --wait makes them last (postStart completes before the unit
    // is active, preStop before the stop signal).
    let hook = |script: &str| {
        format!("/.podc/podc-pause join --uts /.podc/pod/ns/uts --pid /proc/${{MAINPID}}/ns/pid --wait -- /bin/sh -c '{script}'")
    };
    sd.write_unit(
        "jp-hooked.service",
        &format!(
            "{}ExecStartPost={}\nExecStop={}\n",
            container(
                pod,
                "hooked",
                "--new-pid",
                "trap \"exit 0\" TERM; sleep 1000 & wait",
                "notify"
            ),
            hook("sleep 0.3; hostname > /out/post.hostname; ps -o pid,args > /out/post.ps"),
            hook("ps -o pid,args > /out/prestop.ps"),
        ),
    )?;
    // Exit status of a joined container reaches systemd, also when the
    // command exits at once (before the joiner's own exit is processed).
    sd.write_unit(
        "jp-fail.service",
        &container(pod, "fail", "--new-pid", "sleep 0.3; exit 3", "notify"),
    )?;
    sd.write_unit(
        "jp-fastfail.service",
        &container(pod, "fastfail", "--new-pid", "exit 4", "notify"),
    )?;
    // The same, in a unit of an older podc (Type=forking + release).
    sd.write_unit(
        "jp-fastfork.service",
        &container(pod, "fastfail", "--new-pid", "exit 5", "forking"),
    )?;
    sd.reload();
    sd.sh_ok("systemctl start jp-infra.service jp-app.service jp-side.service jp-solo.service");

    // Main PID: the container process itself, a direct child of systemd.
    for unit in ["jp-app.service", "jp-side.service", "jp-solo.service"] {
        assert_eq!(prop(&sd, unit, "ActiveState"), "active", "{unit}");
        let pid = prop(&sd, unit, "MainPID");
        assert_ne!(pid, "0", "{unit} has no main PID");
        let ppid = sd.sh_ok(&format!("awk '/^PPid:/ {{print $2}}' /proc/{pid}/status"));
        assert_eq!(
            ppid.trim(),
            "1",
            "{unit}: main process must be systemd's child"
        );
        let comm = sd.sh_ok(&format!("cat /proc/{pid}/comm"));
        assert!(
            comm.trim() == "sleep" || comm.trim() == "sh",
            "{unit}: main is {comm}"
        );
    }
    sd.sh_ok("for i in $(seq 100); do test -s /run/jtest-out/side.ps && test -s /run/jtest-out/solo.ps && break; sleep 0.05; done");
    let out = |f: &str| sd.sh_ok(&format!("cat /run/jtest-out/{f}"));
    for c in ["app", "side", "solo"] {
        assert_eq!(out(&format!("{c}.hostname")), "jp-host\n", "{c}");
    }
    assert_eq!(out("app.uid"), "65534\n");
    assert_eq!(
        out("app.notify"),
        "[]\n",
        "the container sees $NOTIFY_SOCKET"
    );
    assert!(out("app.hosts").ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\n"));
    // side sees app's process (and the pod init as PID 1), app runs as nobody.
    let side_ps = out("side.ps");
    assert!(
        side_ps.contains("podc-pause") || side_ps.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{side_ps}"
    );
    assert!(
        side_ps.contains("sleep 1000"),
        "side cannot see app:\n{side_ps}"
    );
    assert!(
        side_ps
            .lines()
            .any(|l| l.contains("65534") || l.contains("nobody")),
        "{side_ps}"
    );
    // solo sees only itself: its shell is PID 1, nothing from the pod.
    let solo_ps = out("solo.ps");
    assert!(
        solo_ps
            .lines()
            .nth(1)
            .is_some_and(|l| l.trim_start().starts_with("1 ")),
        "{solo_ps}"
    );
    // Bounding set = the 14 default capabilities (mask 0xa80425fb), and the
    // fresh /proc keeps /proc/sys read-only.
    assert_eq!(
        out("solo.caps").split_whitespace().last(),
        Some("00000000a80425fb")
    );
    let sysctl = out("solo.sysctl");
    assert!(sysctl.contains("Read-only file system"), "{sysctl}");
    assert_eq!(
        solo_ps.lines().count(),
        3,
        "header, its shell, ps:\n{solo_ps}"
    );

    // `systemctl start` returns after ExecStartPost: the hook's files exist
    // at once, with the pod hostname, and its ps shows the container's PID 1.
    sd.sh_ok("systemctl start jp-hooked.service");
    assert_eq!(out("post.hostname"), "jp-host\n");
    let post_ps = out("post.ps");
    assert!(
        post_ps
            .lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 1000")),
        "postStart does not see the container:\n{post_ps}"
    );
    sd.sh_ok("systemctl stop jp-hooked.service");
    let pre_ps = out("prestop.ps");
    assert!(
        pre_ps
            .lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 1000")),
        "preStop does not see the container:\n{pre_ps}"
    );
    assert_eq!(prop(&sd, "jp-hooked.service", "Result"), "success");

    sd.sh("systemctl start jp-fail.service");
    sd.sh_ok(
        "for i in $(seq 100); do systemctl is-failed -q jp-fail.service && break; sleep 0.05; done",
    );
    assert_eq!(prop(&sd, "jp-fail.service", "Result"), "exit-code");
    assert_eq!(prop(&sd, "jp-fail.service", "ExecMainStatus"), "3");
    sd.sh("systemctl start jp-fastfail.service");
    sd.sh_ok(
        "for i in $(seq 100); do systemctl is-failed -q jp-fastfail.service && break; sleep 0.05; done",
    );
    assert_eq!(prop(&sd, "jp-fastfail.service", "Result"), "exit-code");
    assert_eq!(prop(&sd, "jp-fastfail.service", "ExecMainStatus"), "4");
    sd.sh("systemctl start jp-fastfork.service");
    sd.sh_ok(
        "for i in $(seq 100); do systemctl is-failed -q jp-fastfork.service && break; sleep 0.05; done",
    );
    assert_eq!(prop(&sd, "jp-fastfork.service", "Result"), "exit-code");
    assert_eq!(prop(&sd, "jp-fastfork.service", "ExecMainStatus"), "5");

    sd.sh_ok("systemctl stop jp-infra.service");
    for unit in ["jp-app.service", "jp-side.service", "jp-solo.service"] {
        assert_eq!(prop(&sd, unit, "ActiveState"), "inactive", "{unit}");
    }
    assert!(!sd.path("/run/podc/pods/jp").exists());
    Ok(())
}
