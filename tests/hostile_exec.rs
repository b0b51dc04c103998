//! Hostile images and `podc exec` on a real systemd 252: an image's
//! environment cannot steer the unit's host-side helpers (exec hooks stay
//! in the container even when `$MAINPID` is forged), `podc exec` runs no
//! program the container's PATH names on the host and gives the command
//! the container's identity, capabilities and cgroup, and an image user
//! that is uid 0 in another spelling is refused with runAsNonRoot.
//!
//! The "host" here is the test's systemd namespace: its /tmp and /run are
//! tmpfs, so a marker a hook or a planted program would leave on the host
//! lands there and is checked.
mod image_support;
mod support;

use support::podc::{show, Podc, LIBEXEC, TEMPLATES};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Import, under `reference`, busybox with `extra` files in one more layer
/// and the config changed by `edit`.
fn import(
    p: &Podc,
    reference: &str,
    extra: Vec<image_support::Entry>,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result {
    use image_support::*;
    use podc::image::unpack::Compression;
    let mut layers = busybox_layers();
    if !extra.is_empty() {
        layers.push(extra);
    }
    let mut config = busybox_config();
    edit(&mut config["config"]);
    let img = TestImage::new(
        layers.iter().map(|l| layer(l, Compression::Gzip)).collect(),
        config,
    );
    let t = tempfile::tempdir()?;
    let archive = t.path().join("image.tar");
    write_oci_archive(&img, &archive, Some(reference));
    p.sd.copy_in(&archive, "/run/hostile-image.tar")?;
    p.run_ok(&["image", "import", "/run/hostile-image.tar"]);
    Ok(())
}

/// `podc exec POD -c C -- ARGV...`
fn exec(p: &Podc, pod: &str, c: &str, argv: &[&str]) -> std::process::Output {
    let mut a = vec!["exec", pod, "-c", c, "--"];
    a.extend(argv);
    p.run(&a)
}

fn exec_ok(p: &Podc, pod: &str, c: &str, argv: &[&str]) -> String {
    let out = exec(p, pod, c, argv);
    assert!(out.status.success(), "exec {argv:?} in {c}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn image_env_cannot_steer_hooks_and_bad_names_do_not_break_the_build() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.sd.sh_ok("mkdir -p -m 1777 /run/out");
    import(&p, "example.test/hostile-env:1", vec![], |c| {
        c["Env"] = serde_json::json!([
            "PATH=/evil",
            "MAINPID=1",
            "NOTIFY_SOCKET=/run/evil-notify",
            "LD_PRELOAD=/evil.so",
            "WATCHDOG_USEC=1",
            "BAD-NAME=x",
            "GOOD=yes"
        ]);
    })?;
    // PATH=/evil: the commands name busybox by its path.
    p.manifest(
        "/srv/env.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: env\nspec:\n  terminationGracePeriodSeconds: 3\n  volumes:\n  - {name: out, hostPath: {path: /run/out}}\n  containers:\n  - name: c\n    image: example.test/hostile-env:1\n    command: [/bin/busybox, sleep, '1000']\n    volumeMounts: [{name: out, mountPath: /out}]\n    lifecycle:\n      postStart:\n        exec:\n          command: [/bin/sh, -c, '/bin/busybox cat /proc/1/cmdline > /out/hook-pid1; echo \"$GOOD\" > /tmp/hook-ran']\n      preStop:\n        exec:\n          command: [/bin/sh, -c, 'echo stop > /tmp/prestop-ran; echo stop > /out/prestop-ran']\n",
    );
    let out = p.apply("/srv/env.yaml", &[]);
    let all = show(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("Running 1/1 ready"), "{all}");
    for k in [
        "MAINPID",
        "NOTIFY_SOCKET",
        "LD_PRELOAD",
        "WATCHDOG_USEC",
        "BAD-NAME",
    ] {
        assert!(
            all.contains(&format!(
                "image example.test/hostile-env:1 sets environment variable \"{k}\", which podc drops"
            )),
            "no warning for {k}: {all}"
        );
    }
    let unit = p.sd.sh_ok("systemctl cat podc_default_env_c.service");
    assert!(unit.contains("Environment=\"PATH=/evil\""), "{unit}");
    assert!(unit.contains("Environment=\"GOOD=yes\""), "{unit}");
    for k in [
        "MAINPID",
        "NOTIFY_SOCKET",
        "LD_PRELOAD",
        "WATCHDOG",
        "BAD-NAME",
    ] {
        assert!(
            !unit.contains(&format!("\"{k}")),
            "{k} in the unit:\n{unit}"
        );
    }
    // The hook ran in the container: its root has the file, its PID 1 is
    // the container's command; the host has no trace of it.
    assert_eq!(
        exec_ok(&p, "env", "c", &["/bin/busybox", "cat", "/tmp/hook-ran"]),
        "yes\n"
    );
    let pid1 = p.sd.sh_ok("cat /run/out/hook-pid1");
    // The container's PID 1: its command, or (postStart races the
    // command's start, in Kubernetes too) the joiner's child about to
    // exec it; never the host's PID 1, systemd.
    assert!(
        pid1.ends_with("\0--\0/bin/busybox\0sleep\x001000\0")
            || pid1 == "/bin/busybox\0sleep\x001000\0",
        "{pid1:?}"
    );
    assert!(!pid1.contains("systemd"), "{pid1:?}");
    p.sd.sh_ok("test ! -e /tmp/hook-ran");
    let env = exec_ok(&p, "env", "c", &["/bin/busybox", "env"]);
    assert!(
        env.contains("PATH=/evil\n") && env.contains("GOOD=yes\n"),
        "{env}"
    );
    assert!(
        !env.contains("MAINPID=1") && !env.contains("LD_PRELOAD"),
        "{env}"
    );

    p.run_ok(&["delete", "env"]);
    assert_eq!(p.sd.sh_ok("cat /run/out/prestop-ran"), "stop\n");
    p.sd.sh_ok("test ! -e /tmp/prestop-ran");
    Ok(())
}

#[test]
fn a_forged_mainpid_never_takes_a_hook_out_of_its_unit() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    // What an unfiltered image Env (or any other way to set it) did:
    // override systemd's $MAINPID for the hooks. PID 1 is this systemd.
    let template = support::podc::container_template()
        .replace("[Service]\n", "[Service]\nEnvironment=MAINPID=1\n");
    p.sd.write_file(
        &format!("{TEMPLATES}/container.service"),
        template.as_bytes(),
    )?;
    p.rootfs("forged", &["c"]);
    p.manifest(
        "/srv/forged.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: forged\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sleep, '1000']\n    lifecycle:\n      postStart:\n        exec:\n          command: [sh, -c, 'echo escaped > /tmp/forged-hook']\n",
    );
    let out = p.apply("/srv/forged.yaml", &[]);
    assert!(!out.status.success(), "{}", show(&out));
    p.sd.sh_ok("test ! -e /tmp/forged-hook");
    let j =
        p.sd.sh_ok("journalctl --no-pager -o cat -u podc_default_forged_c.service");
    assert!(
        j.contains("process 1 is not in this unit's cgroup: refusing to enter its namespaces"),
        "{j}"
    );
    Ok(())
}

/// `#!/bin/sh` scripts named nsenter that, run on the host, leave a marker.
fn planted() -> Vec<image_support::Entry> {
    use image_support::{dir, file};
    const NSENTER: &[u8] = b"#!/bin/sh\necho pwned > /tmp/nsenter-marker\n";
    vec![
        dir("usr/", 0o755),
        dir("usr/bin/", 0o755),
        file("usr/bin/nsenter", 0o755, NSENTER),
        dir("bin/", 0o755),
        file("bin/nsenter", 0o755, NSENTER),
    ]
}

/// `Key:\tvalue` lines of a /proc/PID/status for `keys`.
fn status_lines(status: &str, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            status
                .lines()
                .find(|l| l.strip_prefix(k).is_some_and(|r| r.starts_with(':')))
                .unwrap_or_else(|| panic!("no {k} in {status}"))
                .to_string()
        })
        .collect()
}

#[test]
fn exec_runs_nothing_from_the_container_on_the_host_and_as_the_container() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    // The image's layer is unpacked on the host: its PATH names that
    // directory, where the store keeps the planted nsenter.
    import(&p, "example.test/planted:1", planted(), |_| {})?;
    let layer = p.sd.sh_ok(
        "dirname $(dirname $(find /var/lib/podc -path '*/diff/usr/bin/nsenter' | head -n1))",
    );
    let layer = layer.trim();
    assert!(layer.starts_with('/'), "no planted layer: {layer:?}");
    import(&p, "example.test/planted:2", planted(), |c| {
        c["Env"] = serde_json::json!([format!("PATH={layer}/usr/bin:{layer}/bin:/bin")]);
        c["User"] = serde_json::json!("0");
    })?;
    p.rootfs("ex", &["user", "root"]);
    p.manifest(
        "/srv/ex.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ex\nspec:\n  terminationGracePeriodSeconds: 2\n  securityContext: {supplementalGroups: [3000]}\n  containers:\n  - name: planted\n    image: example.test/planted:2\n    command: [/bin/busybox, sleep, '1000']\n  - name: user\n    image: busybox:1.36\n    command: [sleep, '1000']\n    securityContext: {runAsUser: 1000, runAsGroup: 2000, allowPrivilegeEscalation: false}\n  - name: root\n    image: busybox:1.36\n    command: [sleep, '1000']\n    securityContext: {runAsUser: 0}\n",
    );
    let out = p.apply_ok("/srv/ex.yaml", &[]);
    assert!(out.contains("Running 3/3 ready"), "{out}");

    // The planted nsenter is never run; the command runs in the container.
    assert_eq!(
        exec_ok(&p, "ex", "planted", &["/bin/busybox", "echo", "ok"]),
        "ok\n"
    );
    assert_eq!(
        exec_ok(&p, "ex", "planted", &["sh", "-c", "echo found in PATH"]),
        "found in PATH\n"
    );
    p.sd.sh_ok("test ! -e /tmp/nsenter-marker");

    // A non-root container: its user, groups, capabilities, no_new_privs
    // and cgroup, as its main process (PID 1 of its PID namespace) has them.
    let id = exec_ok(&p, "ex", "user", &["id"]);
    assert_eq!(id, "uid=1000 gid=2000 groups=2000,3000\n");
    let keys = [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
    ];
    let mine = exec_ok(&p, "ex", "user", &["cat", "/proc/self/status"]);
    let main = exec_ok(&p, "ex", "user", &["cat", "/proc/1/status"]);
    assert_eq!(status_lines(&mine, &keys), status_lines(&main, &keys));
    assert!(mine.contains("\nNoNewPrivs:\t1\n"), "{mine}");
    assert!(mine.contains("\nCapEff:\t0000000000000000\n"), "{mine}");
    let cg = exec_ok(&p, "ex", "user", &["cat", "/proc/self/cgroup"]);
    assert_eq!(cg, exec_ok(&p, "ex", "user", &["cat", "/proc/1/cgroup"]));
    let unit_cg = p.prop("podc_default_ex_user.service", "ControlGroup");
    assert!(
        cg.contains(&format!(":name=systemd:{unit_cg}\n")),
        "{cg}\n{unit_cg}"
    );
    assert!(
        cg.contains(&format!(":devices:{unit_cg}\n")),
        "{cg}\n{unit_cg}"
    );

    // A root container keeps the default capabilities (MKNOD among them),
    // but its device cgroup stops it reading the host's disk.
    let root_status = exec_ok(&p, "ex", "root", &["cat", "/proc/self/status"]);
    let root_main = exec_ok(&p, "ex", "root", &["cat", "/proc/1/status"]);
    assert_eq!(
        status_lines(&root_status, &keys),
        status_lines(&root_main, &keys)
    );
    // Nor do capabilities of the caller that a bounding set does not stop
    // (inheritable, ambient).
    let carried = p.sd.sh_ok(&format!(
        "setpriv --inh-caps +sys_admin --ambient-caps +sys_admin {LIBEXEC}/podc exec ex -c root -- cat /proc/self/status"
    ));
    assert_eq!(
        status_lines(&carried, &keys),
        status_lines(&root_main, &keys)
    );
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata("/")?);
    let (major, minor) = (nix::libc::major(dev), nix::libc::minor(dev));
    // The node itself is refused (the unit's device cgroup has no `m` for
    // it), as in the main process; before, exec made it and only the read
    // could fail.
    let script = format!("mknod /tmp/disk b {major} {minor} 2>&1; ls /tmp/disk 2>&1; true");
    let out = exec_ok(&p, "ex", "root", &["sh", "-c", &script]);
    assert!(
        out.contains("mknod: /tmp/disk: Operation not permitted") && out.contains("No such file"),
        "{out}"
    );
    let script = format!("mknod /tmp/disk b {major} {minor} && head -c1 /tmp/disk >/dev/null");
    let out = exec(&p, "ex", "root", &["sh", "-c", &script]);
    assert!(
        !out.status.success(),
        "read the host's disk: {}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        show(&out)
    );
    // The command's exit status is exec's.
    assert_eq!(
        exec(&p, "ex", "root", &["sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    Ok(())
}

#[test]
fn run_as_non_root_refuses_an_image_user_that_is_uid_0_by_another_name() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.sd.sh_ok("mkdir -p -m 1777 /run/out");
    import(&p, "example.test/root:00", vec![], |c| {
        c["User"] = serde_json::json!("00");
    })?;
    let passwd = image_support::file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\n",
    );
    import(&p, "example.test/root:toor", vec![passwd], |c| {
        c["User"] = serde_json::json!("toor");
    })?;
    let c = |name: &str, tag: &str| {
        format!("  - name: {name}\n    image: example.test/root:{tag}\n    command: [/bin/busybox, sh, -c, 'echo ran > /out/{name}; exec /bin/busybox sleep 1000']\n    volumeMounts: [{{name: out, mountPath: /out}}]\n")
    };
    let y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nr\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext: {{runAsNonRoot: true}}\n  volumes:\n  - {{name: out, hostPath: {{path: /run/out}}}}\n  containers:\n{}{}",
        c("zeros", "00"),
        c("named", "toor"),
    );
    p.manifest("/srv/nr.yaml", &y);
    let out = p.apply("/srv/nr.yaml", &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(!text.contains("Running"), "{}", show(&out));
    assert!(
        text.contains("container has runAsNonRoot and image will run as root (pod: \"default/nr\", container: zeros)"),
        "{}",
        show(&out)
    );
    assert!(
        text.contains("image has non-numeric user (toor), cannot verify user is non-root"),
        "{}",
        show(&out)
    );
    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "nr", "-o", "json"]))?;
    for i in 0..2 {
        let st = &json["status"]["containerStatuses"][i];
        assert_eq!(
            st["state"]["waiting"]["reason"], "CreateContainerConfigError",
            "{st}"
        );
    }
    p.sd.sh_ok("test ! -e /run/out/zeros && test ! -e /run/out/named");
    Ok(())
}
