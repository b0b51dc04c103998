//! `podc volumes setup|teardown` on a real systemd: a pod's volumes.json and
//! data files installed under its state dir, setup run by a oneshot unit the
//! way the infra unit runs it, and busybox "containers" (`RootDirectory=`
//! plus the binds podc renders) that look at the result.
mod support;

use support::systemd::Systemd;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const PODC: &str = "/run/podc-test/podc";
const SECRET: &str = "s3cr3t-Value-7f2a";

fn state(pod: &str) -> String {
    format!("/var/lib/podc/pods/{pod}")
}
fn run(pod: &str) -> String {
    format!("/run/podc/volumes/{pod}")
}

/// Boot, copy `podc` in (the cargo target dir may be under the host's
/// /tmp, which is hidden inside).
fn boot() -> Result<Option<Systemd>> {
    let Some(sd) = Systemd::boot()? else {
        return Ok(None);
    };
    sd.copy_in(env!("CARGO_BIN_EXE_podc"), PODC)?;
    Ok(Some(sd))
}

/// Install a pod's data as `podc apply` does: volumes.json, and data files
/// with their modes (secret files 0600 in 0700 directories).
fn install(sd: &Systemd, pod: &str, json: &str, files: &[(&str, &str, u32)]) -> Result {
    let data = format!("{}/data", state(pod));
    sd.write_file(&format!("{data}/volumes.json"), json.as_bytes())?;
    for (path, content, mode) in files {
        sd.write_file(&format!("{data}/{path}"), content.as_bytes())?;
        sd.sh_ok(&format!("chmod {mode:o} {data}/{path}"));
    }
    sd.sh_ok(&format!(
        "chmod 0700 {data} && find {data}/volumes -type d -exec chmod 0700 {{}} + 2>/dev/null; true"
    ));
    Ok(())
}

/// The infra unit's volume part: setup before, teardown after.
fn infra_unit(pod: &str) -> String {
    let args = format!("--state-dir {} --run-dir {}", state(pod), run(pod));
    format!(
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart={PODC} volumes setup {args}\n\
         ExecStopPost={PODC} volumes teardown {args}\n"
    )
}

fn volumes_setup(sd: &Systemd, pod: &str) -> std::process::Output {
    sd.exec([
        PODC,
        "volumes",
        "setup",
        "--state-dir",
        &state(pod),
        "--run-dir",
        &run(pod),
    ])
}

fn out(sd: &Systemd, name: &str) -> String {
    std::fs::read_to_string(sd.path(format!("/run/vt-out/{name}"))).unwrap_or_default()
}

/// The journal of the unit's last invocation only: the namespaced journald
/// may share a persistent journal directory with the host and other tests.
fn journal(sd: &Systemd, unit: &str) -> String {
    sd.sh_ok(&format!(
        "journalctl --sync; journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -P InvocationID {unit})"
    ))
}

fn mounts_under(sd: &Systemd, dir: &str) -> Vec<String> {
    sd.sh_ok("cat /proc/self/mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(dir))
        .map(str::to_string)
        .collect()
}

const POD_JSON: &str = r#"{"volumes":[
 {"name":"config","location":"/run/podc/volumes/vt/config","kind":"configMap","tmpfs":true,
  "files":[{"source":"volumes/config/app.conf","path":"app.conf","mode":420},
           {"source":"volumes/config/run.sh","path":"bin/tools/run.sh","mode":493},
           {"source":"volumes/config/private","path":"private","mode":384}]},
 {"name":"creds","location":"/run/podc/volumes/vt/creds","kind":"secret","tmpfs":true,
  "files":[{"source":"volumes/creds/password","path":"password","mode":256},
           {"source":"volumes/creds/token","path":"token","mode":420}]},
 {"name":"mem","location":"/run/podc/volumes/vt/mem","kind":"emptyDir","tmpfs":true,"sizeLimit":10485760},
 {"name":"cache","location":"/var/lib/podc/pods/vt/volumes/cache","kind":"emptyDir","tmpfs":false,"sizeLimit":4096}
]}"#;

/// The container: a busybox root with the pod's volumes bound as podc
/// renders them (config and creds read-only, cache also read-only at /ro).
fn container(name: &str, user: Option<&str>, script: &str) -> String {
    let user = user.map(|u| format!("User={u}\n")).unwrap_or_default();
    // systemd expands `%` specifiers in ExecStart=.
    let script = script.replace('%', "%%");
    format!(
        "[Unit]\nBindsTo=vt-infra.service\nAfter=vt-infra.service\n[Service]\n{user}\
         Type=oneshot\nRemainAfterExit=yes\n\
         RootDirectory=/var/lib/podc/rootfs/{name}\nMountAPIVFS=yes\n\
         BindReadOnlyPaths=/run/podc/volumes/vt/config:/etc/app\n\
         BindReadOnlyPaths=/run/podc/volumes/vt/creds:/run/secrets/db\n\
         BindPaths=/run/podc/volumes/vt/mem:/mem\n\
         BindPaths=/var/lib/podc/pods/vt/volumes/cache:/cache\n\
         BindReadOnlyPaths=/var/lib/podc/pods/vt/volumes/cache:/ro\n\
         BindPaths=/run/vt-out:/out\n\
         ExecStart=/bin/sh -c '{script}'\n"
    )
}

#[test]
fn config_secret_memory_and_disk_volumes_in_a_container() -> Result {
    let Some(sd) = boot()? else { return Ok(()) };
    install(
        &sd,
        "vt",
        POD_JSON,
        &[
            ("volumes/config/app.conf", "level=debug\n", 0o644),
            ("volumes/config/run.sh", "#!/bin/sh\necho ran\n", 0o644),
            ("volumes/config/private", "p\n", 0o644),
            ("volumes/creds/password", SECRET, 0o600),
            ("volumes/creds/token", SECRET, 0o600),
        ],
    )?;
    sd.sh_ok("mkdir -p /run/vt-out && chmod 1777 /run/vt-out");
    sd.busybox_rootfs("/var/lib/podc/rootfs/app");
    sd.busybox_rootfs("/var/lib/podc/rootfs/app-nobody");
    sd.busybox_rootfs("/var/lib/podc/rootfs/holder");
    sd.write_unit("vt-infra.service", &infra_unit("vt"))?;
    sd.write_unit(
        "vt-app.service",
        &container(
            "app",
            None,
            "stat -c \"%n %a %U\" /etc/app/app.conf /etc/app/bin/tools/run.sh /etc/app/private \
             /etc/app/bin /run/secrets/db/password /run/secrets/db/token > /out/modes; \
             cat /etc/app/app.conf > /out/conf; /etc/app/bin/tools/run.sh > /out/exec; \
             (echo x > /etc/app/new) 2> /out/config-write; \
             (echo x > /run/secrets/db/password) 2> /out/secret-write; \
             (echo x > /ro/x) 2> /out/ro-write; \
             grep \" /mem \" /proc/mounts > /out/mem-mount; df -k /mem | tail -1 > /out/mem-df; \
             stat -c %a /mem /cache > /out/empty-modes; \
             echo kept > /cache/data; echo lost > /mem/data; echo ok > /out/app-done",
        ),
    )?;
    // Kubernetes' default 0644 is readable by any container user; 0400 and
    // 0600 are not.
    sd.write_unit(
        "vt-nobody.service",
        &container(
            "app-nobody",
            Some("65534"),
            "id -u > /out/nobody-id; cat /etc/app/app.conf > /out/nobody-conf; \
             wc -c < /run/secrets/db/token > /out/nobody-token; \
             (cat /run/secrets/db/password) > /out/nobody-password 2>&1; \
             (cat /etc/app/private) > /out/nobody-private 2>&1; \
             echo x > /mem/by-nobody && echo x > /cache/by-nobody && echo ok > /out/nobody-done",
        ),
    )?;
    // A long-running root container, so /proc/PID/root exists during the
    // host-user checks below.
    sd.write_unit(
        "vt-holder.service",
        &container("holder", None, "exec sleep 1000").replace("Type=oneshot", "Type=simple"),
    )?;
    sd.reload();
    sd.sh_ok("systemctl start vt-app.service vt-nobody.service vt-holder.service");

    assert_eq!(out(&sd, "app-done"), "ok\n");
    assert_eq!(
        out(&sd, "modes"),
        "/etc/app/app.conf 644 root\n/etc/app/bin/tools/run.sh 755 root\n\
         /etc/app/private 600 root\n/etc/app/bin 755 root\n\
         /run/secrets/db/password 400 root\n/run/secrets/db/token 644 root\n"
    );
    assert_eq!(out(&sd, "conf"), "level=debug\n");
    assert_eq!(out(&sd, "exec"), "ran\n");
    for f in ["config-write", "secret-write", "ro-write"] {
        assert!(
            out(&sd, f).contains("Read-only file system"),
            "{f}: {:?}",
            out(&sd, f)
        );
    }
    let mem = out(&sd, "mem-mount");
    assert!(mem.starts_with("tmpfs /mem tmpfs "), "{mem}");
    assert!(mem.contains("size=10240k"), "{mem}");
    let df: Vec<String> = out(&sd, "mem-df")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(df[1], "10240", "df -k /mem: {df:?}");
    assert_eq!(out(&sd, "empty-modes"), "777\n777\n");

    assert_eq!(out(&sd, "nobody-done"), "ok\n");
    assert_eq!(out(&sd, "nobody-id"), "65534\n");
    assert_eq!(out(&sd, "nobody-conf"), "level=debug\n");
    // The 0644 token is readable (its length only: the output dir is not
    // secret).
    assert_eq!(out(&sd, "nobody-token").trim(), SECRET.len().to_string());
    assert!(out(&sd, "nobody-password").contains("Permission denied"));
    assert!(out(&sd, "nobody-private").contains("Permission denied"));

    // A non-root host user reaches the secret through no path: not the run
    // dir, not the data dir, not a root container's /proc/PID/root; and a
    // recursive grep of everything it can read does not find it.
    let holder = sd
        .sh_ok("systemctl show -P MainPID vt-holder")
        .trim()
        .to_string();
    let ls = sd.sh_ok("ls -ld /run/podc/volumes/vt /var/lib/podc/pods/vt/data");
    assert!(
        ls.lines().all(|l| l.starts_with("drwx------ ")),
        "not root-only:\n{ls}"
    );
    for p in [
        "/run/podc/volumes/vt/creds/password".to_string(),
        "/run/podc/volumes/vt/creds/token".to_string(),
        "/var/lib/podc/pods/vt/data/volumes/creds/password".to_string(),
        format!("/proc/{holder}/root/run/secrets/db/token"),
    ] {
        let o = sd.exec([
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "cat",
            &p,
        ]);
        assert!(!o.status.success(), "nobody read {p}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains(SECRET));
    }
    let found = sd.sh(&format!(
        "setpriv --reuid 65534 --regid 65534 --clear-groups \
         grep -rl {SECRET} /run /var/lib/podc /etc/systemd /tmp 2>/dev/null"
    ));
    assert_eq!(
        String::from_utf8_lossy(&found.stdout),
        "",
        "nobody found it"
    );
    // Root on the host finds it only on tmpfs and in the root-only data dir.
    let root_found = sd.sh_ok(&format!(
        "grep -rl {SECRET} /run/podc /var/lib/podc 2>/dev/null; true"
    ));
    let mut root_found: Vec<&str> = root_found.lines().collect();
    root_found.sort();
    assert_eq!(
        root_found,
        [
            "/run/podc/volumes/vt/creds/password",
            "/run/podc/volumes/vt/creds/token",
            "/var/lib/podc/pods/vt/data/volumes/creds/password",
            "/var/lib/podc/pods/vt/data/volumes/creds/token",
        ]
    );

    // Running setup again without a teardown converges: one mount per
    // tmpfs volume, the Memory emptyDir (and its data) kept.
    let o = volumes_setup(&sd, "vt");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut m = mounts_under(&sd, "/run/podc/volumes/vt");
    m.sort();
    assert_eq!(
        m,
        [
            "/run/podc/volumes/vt/config",
            "/run/podc/volumes/vt/creds",
            "/run/podc/volumes/vt/mem"
        ]
    );
    sd.sh_ok("test \"$(cat /run/podc/volumes/vt/mem/data)\" = lost");

    // Changing the ConfigMap and restarting the pod's infra unit updates
    // the volume; the on-disk emptyDir keeps its data, the Memory one
    // starts empty.
    sd.write_file(
        "/var/lib/podc/pods/vt/data/volumes/config/app.conf",
        b"level=info\n",
    )?;
    sd.sh_ok("systemctl stop vt-holder vt-nobody vt-app; rm -f /run/vt-out/*");
    sd.sh_ok("systemctl restart vt-infra");
    sd.sh_ok("test ! -e /run/podc/volumes/vt/mem/data");
    sd.sh_ok("systemctl start vt-app");
    assert_eq!(out(&sd, "conf"), "level=info\n");
    sd.sh_ok("test \"$(cat /var/lib/podc/pods/vt/volumes/cache/data)\" = kept");
    // sizeLimit on disk is reported in the journal (4 KiB limit; the
    // directory alone uses a block, plus the files).
    let journal = journal(&sd, "vt-infra");
    assert!(
        journal.contains("emptyDir \"cache\" uses") && journal.contains("sizeLimit"),
        "{journal}"
    );

    // Teardown (infra stop) leaves nothing mounted and removes the run dir;
    // the on-disk emptyDir stays until the pod's state dir goes.
    sd.sh_ok("systemctl stop vt-app vt-infra");
    assert_eq!(mounts_under(&sd, "/run/podc/volumes"), Vec::<String>::new());
    sd.sh_ok("test ! -e /run/podc/volumes/vt");
    sd.sh_ok("test -f /var/lib/podc/pods/vt/volumes/cache/data");
    // Teardown again is a no-op.
    sd.sh_ok(&format!(
        "{PODC} volumes teardown --state-dir {} --run-dir {}",
        state("vt"),
        run("vt")
    ));
    Ok(())
}

fn host_path(name: &str, path: &str, ty: &str) -> String {
    format!(
        r#"{{"name":"{name}","location":"{path}","kind":"hostPath","tmpfs":false,"hostPathType":"{ty}"}}"#
    )
}

fn pod_json(vols: &[String]) -> String {
    format!("{{\"volumes\":[{}]}}", vols.join(","))
}

#[test]
fn host_path_types_fail_the_pod_before_any_container_starts() -> Result {
    let Some(sd) = boot()? else { return Ok(()) };
    // hostPaths under the namespace's own /run (a tmpfs), never the host's.
    sd.sh_ok(
        "mkdir -p /run/hp/dir && echo x > /run/hp/file && mkfifo /run/hp/fifo \
         && ln -s /run/hp/file /run/hp/link",
    );
    let expect = |vols: Vec<String>, err: Option<&str>| {
        install(&sd, "hp", &pod_json(&vols), &[]).unwrap();
        let o = volumes_setup(&sd, "hp");
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        match err {
            None => assert!(o.status.success(), "{vols:?}: {stderr}"),
            Some(e) => {
                assert!(!o.status.success(), "{vols:?} passed");
                assert!(stderr.contains(e), "{vols:?}: {stderr}");
                assert!(
                    stderr.starts_with("podc volumes setup: volume \"x\": "),
                    "{stderr}"
                );
            }
        }
    };
    // Every type that passes.
    expect(
        vec![
            host_path("a", "/run/hp/missing-but-unchecked", ""),
            host_path("b", "/run/hp/dir", "Directory"),
            host_path("c", "/run/hp/dir", "DirectoryOrCreate"),
            host_path("d", "/run/hp/file", "File"),
            host_path("e", "/run/hp/link", "File"),
            host_path("f", "/run/hp/file", "FileOrCreate"),
            host_path("g", "/run/systemd/private", "Socket"),
            host_path("h", "/dev/null", "CharDevice"),
        ],
        None,
    );
    // Every wrong type, each with kubelet's message.
    for (vol, msg) in [
        (
            host_path("x", "/run/hp/missing", "Directory"),
            "hostPath type check failed: /run/hp/missing is not a directory (it does not exist)",
        ),
        (
            host_path("x", "/run/hp/file", "Directory"),
            "hostPath type check failed: /run/hp/file is not a directory",
        ),
        (
            host_path("x", "/run/hp/file", "DirectoryOrCreate"),
            "/run/hp/file is not a directory",
        ),
        (
            host_path("x", "/run/hp/dir", "File"),
            "/run/hp/dir is not a file",
        ),
        (
            host_path("x", "/run/hp/dir", "FileOrCreate"),
            "/run/hp/dir is not a file",
        ),
        (
            host_path("x", "/run/hp/file", "Socket"),
            "/run/hp/file is not a socket file",
        ),
        (
            host_path("x", "/run/hp/fifo", "CharDevice"),
            "/run/hp/fifo is not a character device",
        ),
        (
            host_path("x", "/dev/null", "BlockDevice"),
            "/dev/null is not a block device",
        ),
        (
            host_path("x", "/run/hp/no-parent/f", "FileOrCreate"),
            "parent directory /run/hp/no-parent does not exist",
        ),
    ] {
        expect(vec![vol], Some(msg));
    }

    // The OrCreate types create, with Kubernetes' modes; DirectoryOrCreate
    // creates parents, FileOrCreate an empty file.
    expect(
        vec![
            host_path("d", "/run/hp/new/deep/dir", "DirectoryOrCreate"),
            host_path("f", "/run/hp/dir/new-file", "FileOrCreate"),
        ],
        None,
    );
    assert_eq!(
        sd.sh_ok("stat -c '%a %F' /run/hp/new /run/hp/new/deep/dir && stat -c '%a %F %s' /run/hp/dir/new-file"),
        "755 directory\n755 directory\n644 regular empty file 0\n"
    );

    // A failing check creates nothing at all: not the DirectoryOrCreate
    // beside it, not the ConfigMap tmpfs.
    let cm = r#"{"name":"cfg","location":"/run/podc/volumes/hp/cfg","kind":"configMap","tmpfs":true,
       "files":[{"source":"volumes/cfg/k","path":"k","mode":420}]}"#;
    install(
        &sd,
        "hp",
        &pod_json(&[
            host_path("d", "/run/hp/would-be-created", "DirectoryOrCreate"),
            cm.to_string(),
            host_path("x", "/run/hp/missing", "Directory"),
        ]),
        &[("volumes/cfg/k", "v", 0o644)],
    )?;
    // Through units, as podc runs it: the infra unit fails, the container
    // bound to it never runs.
    sd.write_unit("hp-infra.service", &infra_unit("hp"))?;
    sd.write_unit(
        "hp-app.service",
        "[Unit]\nBindsTo=hp-infra.service\nAfter=hp-infra.service\n\
         [Service]\nType=oneshot\nExecStart=/bin/touch /run/hp/app-ran\n",
    )?;
    sd.reload();
    assert!(!sd.sh("systemctl start hp-app.service").status.success());
    assert_eq!(
        sd.sh_ok("systemctl show -P Result hp-infra").trim(),
        "exit-code"
    );
    sd.sh_ok("test ! -e /run/hp/app-ran");
    let journal = journal(&sd, "hp-infra");
    assert!(
        journal.contains("hostPath type check failed: /run/hp/missing is not a directory"),
        "{journal}"
    );
    sd.sh_ok("test ! -e /run/hp/would-be-created && test ! -e /run/podc/volumes/hp");
    assert_eq!(mounts_under(&sd, "/run/podc"), Vec::<String>::new());
    Ok(())
}

#[test]
fn data_volume_writes_and_reads_never_leave_their_directories() -> Result {
    let Some(sd) = boot()? else { return Ok(()) };
    let cm = |files: &str| {
        format!(
            r#"{{"volumes":[{{"name":"cfg","location":"/run/podc/volumes/ev/cfg","kind":"configMap","tmpfs":true,"files":[{files}]}}]}}"#
        )
    };
    let setup_fails = |json: &str, want: &str| {
        install(&sd, "ev", json, &[("volumes/cfg/ok", "ok", 0o644)]).unwrap();
        let o = volumes_setup(&sd, "ev");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{json} passed");
        assert!(stderr.contains(want), "{json}: {stderr}");
        // Nothing left mounted or created.
        assert_eq!(mounts_under(&sd, "/run/podc"), Vec::<String>::new());
        sd.sh_ok("test ! -e /run/podc/volumes/ev");
    };
    sd.sh_ok("mkdir -p /run/elsewhere && echo host-secret > /run/elsewhere/secret");

    // Escapes in the JSON itself are refused before anything happens.
    setup_fails(
        &cm(r#"{"source":"volumes/cfg/ok","path":"../../../../run/elsewhere/x","mode":420}"#),
        "must not contain \"..\"",
    );
    setup_fails(
        &cm(r#"{"source":"volumes/cfg/ok","path":"/run/elsewhere/x","mode":420}"#),
        "must be relative",
    );
    setup_fails(
        &cm(r#"{"source":"../../../../run/elsewhere/secret","path":"x","mode":420}"#),
        "must not contain \"..\"",
    );
    // A symlink planted in the data dir is not followed, neither as the
    // file nor as a directory on the way.
    sd.sh_ok(
        "d=/var/lib/podc/pods/ev/data/volumes; mkdir -p $d/cfg \
         && ln -sfn /run/elsewhere/secret $d/cfg/link && ln -sfn /run/elsewhere $d/linkdir",
    );
    setup_fails(
        &cm(r#"{"source":"volumes/cfg/link","path":"x","mode":420}"#),
        "opening source volumes/cfg/link",
    );
    setup_fails(
        &cm(r#"{"source":"volumes/linkdir/secret","path":"x","mode":420}"#),
        "opening source volumes/linkdir/secret",
    );
    // A file and a directory of the same name.
    setup_fails(
        &cm(r#"{"source":"volumes/cfg/ok","path":"a","mode":420},
               {"source":"volumes/cfg/ok","path":"a/b","mode":420}"#),
        "file a/b",
    );
    sd.sh_ok("test ! -e /run/elsewhere/x && test \"$(cat /run/elsewhere/secret)\" = host-secret");

    // A location that is not where podc puts the volume is refused.
    setup_fails(
        r#"{"volumes":[{"name":"cfg","location":"/run/elsewhere","kind":"configMap","tmpfs":true}]}"#,
        "location /run/elsewhere is not /run/podc/volumes/ev/cfg",
    );
    sd.sh_ok("test \"$(cat /run/elsewhere/secret)\" = host-secret");
    // And a good one works, then a pod without volumes.json is a no-op.
    install(
        &sd,
        "ev",
        &cm(r#"{"source":"volumes/cfg/ok","path":"dir/ok","mode":416}"#),
        &[],
    )?;
    let o = volumes_setup(&sd, "ev");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        sd.sh_ok("stat -c '%a %s' /run/podc/volumes/ev/cfg/dir/ok"),
        "640 2\n"
    );
    sd.sh_ok("rm /var/lib/podc/pods/ev/data/volumes.json");
    sd.sh_ok(&format!(
        "{PODC} volumes teardown --state-dir {0} --run-dir {1} && {PODC} volumes setup --state-dir {0} --run-dir {1} && test ! -e {1}",
        state("ev"),
        run("ev")
    ));
    Ok(())
}

/// `podc build` output as it is: the rendered infra unit runs setup and
/// teardown, a busybox container gets the rendered volume binds.
#[test]
fn built_pod_volumes_through_the_rendered_infra_unit() -> Result {
    let Some(sd) = boot()? else { return Ok(()) };
    let pause = support::helper::static_podc_pause();
    sd.copy_in(&pause, "/run/podc-test/podc-pause")?;
    let build = tempfile::tempdir()?;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_podc"))
        .args(["build", "-o"])
        .arg(build.path())
        .args([
            "--systemd-version",
            "252",
            "--libexec-dir",
            "/run/podc-test",
        ])
        .arg(format!("{examples}/config-and-secret.yaml"))
        .arg(format!("{examples}/web-sidecar.yaml"))
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let units = build.path().join("units");
    for pod in ["default_app", "default_web"] {
        // Install the pod's data as apply does (modes kept).
        let dest = sd.path(format!("/var/lib/podc/pods/{pod}"));
        std::fs::create_dir_all(&dest)?;
        let cp = std::process::Command::new("cp")
            .arg("-a")
            .arg(build.path().join(format!("pods/{pod}/data")))
            .arg(&dest)
            .status()?;
        assert!(cp.success());
        // The infra unit as rendered, minus its container rootfs mounts
        // (the images are not here; this test is about volumes).
        let infra = format!("podc_{pod}.service");
        let text: String = std::fs::read_to_string(units.join(&infra))?
            .lines()
            .filter(|l| !l.contains("\"rootfs\""))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(text.contains("\"volumes\" \"setup\""), "{text}");
        sd.write_unit(&infra, &text)?;
    }
    // The rendered container units' volume binds (the joiner's `--bind` and
    // `--bind-ro` arguments), as systemd binds in a busybox root.
    let binds = |unit: &str| -> Result<String> {
        let text = std::fs::read_to_string(units.join(unit))?;
        let exec = text
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .ok_or("no ExecStart=")?;
        let words: Vec<&str> = exec.split('"').skip(1).step_by(2).collect();
        Ok(words
            .windows(3)
            .filter(|w| w[1].contains("/volumes/"))
            .filter_map(|w| match w[0] {
                "--bind" => Some(format!("BindPaths={}:{}\n", w[1], w[2])),
                "--bind-ro" => Some(format!("BindReadOnlyPaths={}:{}\n", w[1], w[2])),
                _ => None,
            })
            .collect())
    };
    sd.sh_ok("mkdir -p /run/vt-out && chmod 1777 /run/vt-out");
    for (name, unit, infra, script) in [
        (
            "app",
            "podc_default_app_app.service",
            "podc_default_app.service",
            "cat /etc/app/conf/app.conf > /out/conf; \
             stat -c \"%n %a\" /etc/app/conf/app.conf /run/secrets/db/password /run/secrets/db/username > /out/modes; \
             (echo x > /etc/app/x) 2> /out/ro; true",
        ),
        (
            "httpd",
            "podc_default_web_httpd.service",
            "podc_default_web.service",
            "cat /www/index.html > /out/index; echo line > /logs/access.log",
        ),
        (
            "tail",
            "podc_default_web_log-tail.service",
            "podc_default_web.service",
            "cat /logs/access.log > /out/tail",
        ),
    ] {
        sd.busybox_rootfs(&format!("/var/lib/podc/rootfs/{name}"));
        sd.write_unit(
            &format!("t-{name}.service"),
            &format!(
                "[Unit]\nBindsTo={infra}\nAfter={infra}\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
                 RootDirectory=/var/lib/podc/rootfs/{name}\nMountAPIVFS=yes\n{}\
                 BindPaths=/run/vt-out:/out\nExecStart=/bin/sh -c '{}'\n",
                binds(unit)?,
                script.replace('%', "%%")
            ),
        )?;
    }
    sd.reload();
    sd.sh_ok("systemctl start t-app t-httpd && systemctl start t-tail");
    assert_eq!(out(&sd, "conf"), "listen = 8080\nworkers = 4\n");
    assert_eq!(
        out(&sd, "modes"),
        "/etc/app/conf/app.conf 644\n/run/secrets/db/password 400\n/run/secrets/db/username 400\n"
    );
    assert!(out(&sd, "ro").contains("Read-only file system"));
    assert_eq!(out(&sd, "index"), "<h1>hello from podc</h1>\n");
    assert_eq!(out(&sd, "tail"), "line\n");
    sd.sh_ok("test \"$(cat /run/podc/volumes/default_app/creds/password)\" = s3cr3t-passw0rd");

    sd.sh_ok("systemctl stop podc_default_app.service podc_default_web.service");
    assert_eq!(mounts_under(&sd, "/run/podc"), Vec::<String>::new());
    sd.sh_ok(
        "test ! -e /run/podc/volumes/default_app && test ! -e /run/podc/volumes/default_web \
         && test -f /var/lib/podc/pods/default_web/volumes/logs/access.log",
    );
    Ok(())
}

/// subPaths are resolved by setup (no symlink followed) and pinned by a
/// bind mount; the container binds the pin. A symlink planted in the volume
/// afterwards, or before the next setup, never reaches outside it.
#[test]
fn sub_paths_are_pinned_and_never_follow_planted_symlinks() -> Result {
    let Some(sd) = boot()? else { return Ok(()) };
    let json = r#"{"volumes":[
 {"name":"cache","location":"/var/lib/podc/pods/sp/volumes/cache","kind":"emptyDir","tmpfs":false,
  "subPaths":[{"path":"logs/app","pin":"/run/podc/volumes/sp/.subpath/0"}]},
 {"name":"cfg","location":"/run/podc/volumes/sp/cfg","kind":"configMap","tmpfs":true,
  "files":[{"source":"volumes/cfg/app.conf","path":"app.conf","mode":416}],
  "subPaths":[{"path":"app.conf","pin":"/run/podc/volumes/sp/.subpath/1"}]}
]}"#;
    install(
        &sd,
        "sp",
        json,
        &[("volumes/cfg/app.conf", "conf\n", 0o644)],
    )?;
    sd.sh_ok(
        "mkdir -p /run/vt-out /run/elsewhere && chmod 1777 /run/vt-out \
         && echo host > /run/elsewhere/keep",
    );
    sd.busybox_rootfs("/var/lib/podc/rootfs/c");
    sd.write_unit("sp-infra.service", &infra_unit("sp"))?;
    sd.write_unit(
        "sp-c.service",
        "[Unit]\nBindsTo=sp-infra.service\nAfter=sp-infra.service\n[Service]\nType=oneshot\n\
         RootDirectory=/var/lib/podc/rootfs/c\nMountAPIVFS=yes\n\
         BindPaths=/run/podc/volumes/sp/.subpath/0:/data\n\
         BindReadOnlyPaths=/run/podc/volumes/sp/.subpath/1:/etc/app.conf\n\
         BindPaths=/run/vt-out:/out\n\
         ExecStart=/bin/sh -c 'cat /etc/app.conf > /out/conf; stat -c %%a /etc/app.conf /data > /out/modes; \
         ls /data > /out/ls; date >> /data/x'\n",
    )?;
    sd.reload();
    sd.sh_ok("systemctl start sp-c");
    assert_eq!(out(&sd, "conf"), "conf\n");
    // The missing subPath was created with the volume root's mode.
    assert_eq!(out(&sd, "modes"), "640\n777\n");
    sd.sh_ok("test -s /var/lib/podc/pods/sp/volumes/cache/logs/app/x");

    // A container swaps the subPath for a symlink while the pod runs: the
    // next container start binds the pinned directory, not the symlink.
    sd.sh_ok(
        "cd /var/lib/podc/pods/sp/volumes/cache/logs && mv app app.old \
         && ln -s /run/elsewhere app",
    );
    sd.sh_ok("systemctl restart sp-c");
    assert_eq!(out(&sd, "ls"), "x\n");
    sd.sh_ok("test ! -e /run/elsewhere/x && test $(wc -l < /var/lib/podc/pods/sp/volumes/cache/logs/app.old/x) = 2");

    // On the next setup the symlink fails the pod with a reason, for the
    // last component and for one on the way; nothing is left mounted.
    sd.sh_ok("systemctl stop sp-c sp-infra");
    for plant in [
        "true",
        "rm app && mv app.old real && ln -s real app",
        "cd .. && rm -rf logs && ln -s /run/elsewhere logs",
    ] {
        sd.sh_ok(&format!(
            "cd /var/lib/podc/pods/sp/volumes/cache/logs && {plant}"
        ));
        assert!(!sd.sh("systemctl start sp-c").status.success(), "{plant}");
        let journal = journal(&sd, "sp-infra");
        assert!(journal.contains("is a symlink"), "{plant}: {journal}");
        assert_eq!(mounts_under(&sd, "/run/podc"), Vec::<String>::new());
    }
    sd.sh_ok("test \"$(ls /run/elsewhere)\" = keep");
    Ok(())
}
