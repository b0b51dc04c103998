//! Hostile images and other local users against the host (design §7).
//!
//! - Other local users cannot reach anything podc keeps on the host: an
//!   image's setuid-root binary and 0666 block device, what a container
//!   wrote into its writable layer, the pods' state, volumes, secrets and
//!   the pod's `/dev/shm` are all behind root-only directories, checked as
//!   uid 65534 on a real systemd 252; non-root containers still run.
//! - Strings an image supplies never reach a terminal raw.
mod support;

use support::podc::{show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs `script` inside the namespace as uid/gid 65534 with no groups.
fn as_nobody(p: &Podc, script: &str) -> std::process::Output {
    p.sd.exec([
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "--",
        "sh",
        "-c",
        script,
    ])
}

/// Lines of `find ARGS` run as root inside the namespace.
fn find(p: &Podc, args: &str) -> Vec<String> {
    p.sd.sh_ok(&format!("find {args}"))
        .lines()
        .map(String::from)
        .collect()
}

/// An image whose only layer holds busybox, a setuid-root copy of it and a
/// 0666 block device (loop0), as a plain rootfs tarball: GNU tar keeps the
/// mode bits and the device node.
fn import_hostile_image(p: &Podc) {
    p.sd.busybox_rootfs("/run/hostile/root");
    p.sd.sh_ok(
        "set -e; cd /run/hostile/root; cp bin/busybox bin/suid; chmod 4755 bin/suid; \
         mknod -m 0666 dev/evil-blk b 7 0; \
         echo 'user:x:1000:1000::/:/bin/sh' >> etc/passwd; \
         tar -C /run/hostile/root -cf /run/hostile/image.tar .",
    );
    p.run_ok(&[
        "image",
        "import",
        "/run/hostile/image.tar",
        "--name",
        "hostile:1",
    ]);
}

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: hh}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: user
    image: hostile:1
    securityContext: {runAsUser: 1000, runAsGroup: 1000}
    command: [sh, -c, "id -u > /data/uid; ls / > /data/ls; echo shm > /dev/shm/by-user; cat /dev/shm/by-user > /data/shm; echo x > /mem/x; cat /cfg/k > /data/cfg; echo ok > /data/done; exec sleep 1000"]
    volumeMounts: [{name: data, mountPath: /data}, {name: mem, mountPath: /mem}, {name: cfg, mountPath: /cfg}]
  - name: root
    image: hostile:1
    command: [sh, -c, "cp /bin/busybox /tmp/made-suid && chmod 4755 /tmp/made-suid && echo ok > /tmp/done; exec sleep 1000"]
    env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: s, key: k}}}]
  volumes:
  - {name: data, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory}}
  - {name: cfg, secret: {secretName: s}}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {k: sesame}
"#;

/// Every path strictly under podc's trees that uid 65534 can `stat`.
fn reachable_by_nobody(p: &Podc) -> Vec<String> {
    let all = find(p, "/var/lib/podc /run/podc -mindepth 1");
    assert!(all.len() > 30, "the walk found the trees: {all:?}");
    p.sd.write_file("/run/hostile/paths", all.join("\n").as_bytes())
        .unwrap();
    let out = as_nobody(
        p,
        "while IFS= read -r f; do stat -- \"$f\" >/dev/null 2>&1 && echo \"$f\"; done < /run/hostile/paths",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn other_users_reach_nothing_podc_keeps_and_non_root_containers_still_run() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    import_hostile_image(&p);
    p.manifest("/srv/hh.yaml", POD);
    let out = p.apply_ok("/srv/hh.yaml", &[]);
    assert!(out.contains("Running 2/2 ready"), "{out}");
    let data = "/var/lib/podc/pods/default_hh/volumes/data";
    p.sd.sh_ok(&format!(
        "for i in $(seq 100); do [ -s {data}/done ] && break; sleep 0.05; done; test -s {data}/done"
    ));

    // The non-root container reads its own root, writes its emptyDir, its
    // Memory emptyDir and the pod's /dev/shm, and reads its secret.
    let file = |f: &str| p.sd.sh_ok(&format!("cat {data}/{f}"));
    assert_eq!(file("uid"), "1000\n");
    assert!(file("ls").contains("bin\n"), "{}", file("ls"));
    assert_eq!(file("shm"), "shm\n");
    assert_eq!(file("cfg"), "sesame");
    p.sd.sh_ok("test -f /run/podc/pods/default_hh/shm/by-user");

    // What there is to protect: the image's setuid binary and device (in
    // the layer), the one the root container made (in its upper layer).
    let suid = find(&p, "/var/lib/podc -type f -perm -4000");
    assert!(
        suid.iter().any(|s| s.ends_with("/diff/bin/suid"))
            && suid.iter().any(|s| s.ends_with("/upper/tmp/made-suid")),
        "{suid:?}"
    );
    let blk = find(&p, "/var/lib/podc -type b");
    assert!(
        blk.iter().any(|b| b.ends_with("/diff/dev/evil-blk")),
        "{blk:?}"
    );

    // uid 65534 reaches no path under the state and runtime roots.
    let open = reachable_by_nobody(&p);
    assert!(
        open.is_empty(),
        "{} paths reachable by uid 65534, e.g. {:?}",
        open.len(),
        &open[..open.len().min(20)]
    );
    for f in suid.iter().chain(&blk).chain([
        &"/run/podc/pods/default_hh/shm".to_string(),
        &"/var/lib/podc/images".to_string(),
    ]) {
        let out = as_nobody(&p, &format!("stat -- {f}"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "stat {f} as nobody: {}",
            show(&out)
        );
    }
    for f in &suid {
        let out = as_nobody(&p, &format!("{f} id -u"));
        assert!(
            !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "exec {f} as nobody: {}",
            show(&out)
        );
    }
    for f in &blk {
        let out = as_nobody(&p, &format!("head -c 0 < {f}"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "open {f} as nobody: {}",
            show(&out)
        );
    }
    Ok(())
}

#[test]
fn trees_an_older_podc_left_open_are_tightened() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    import_hostile_image(&p);
    p.manifest("/srv/hh.yaml", POD);
    p.apply_ok("/srv/hh.yaml", &[]);
    let modes = |dirs: &str| p.sd.sh_ok(&format!("stat -c '%a %U %n' {dirs}"));
    let dirs = "/var/lib/podc /var/lib/podc/images /var/lib/podc/pods /run/podc";
    // as podc before this fix left them
    p.sd.sh_ok(&format!("chmod 0755 {dirs}"));
    p.run_ok(&["image", "ls"]);
    assert_eq!(
        modes("/var/lib/podc /var/lib/podc/images"),
        "700 root /var/lib/podc\n700 root /var/lib/podc/images\n"
    );
    p.sd.sh_ok(&format!("chmod 0755 {dirs}"));
    let out = p.apply_ok("/srv/hh.yaml", &[]);
    assert!(out.contains("pod default/hh unchanged"), "{out}");
    assert_eq!(
        modes("/var/lib/podc/pods /run/podc"),
        "700 root /var/lib/podc/pods\n700 root /run/podc\n"
    );
    // and a restarted infra makes the pod's run dir private again
    p.sd.sh_ok("chmod 0755 /run/podc/pods /run/podc/pods/default_hh");
    p.sd.sh_ok("systemctl restart podc_default_hh.target");
    assert_eq!(
        modes("/run/podc/pods /run/podc/pods/default_hh"),
        "700 root /run/podc/pods\n700 root /run/podc/pods/default_hh\n"
    );
    Ok(())
}

#[test]
fn a_build_keeps_secrets_from_other_users() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    import_hostile_image(&p);
    p.manifest("/srv/hh.yaml", POD);
    // an admin shell with a loose umask
    p.sd.sh_ok(&format!(
        "umask 000; {}/podc build /srv/hh.yaml -o /srv/build",
        support::podc::LIBEXEC
    ));
    let secrets = find(&p, "/srv/build/pods -type f");
    assert!(!secrets.is_empty());
    for f in &secrets {
        let out = as_nobody(&p, &format!("cat -- {f}"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{f}: {}",
            show(&out)
        );
    }
    let writable = find(&p, "/srv/build -perm /022");
    assert_eq!(writable, Vec::<String>::new(), "group/world-writable");
    Ok(())
}

mod image_support;

/// An image `created` that clears the screen, sets the window title and
/// forges a row of `podc image ls`.
const EVIL_CREATED: &str = "\x1b[2J\x1b]0;pwned\x07\nFAKE-ROW";
const EVIL_USER: &str = "\x1b]0;pwned\x07\u{202e}nobody";
/// A user that passes the build's check of image users (no control
/// character) but still reorders a terminal line: a runAsNonRoot pod
/// installs and its reason quotes it.
const BIDI_USER: &str = "\u{202e}nobody";

/// Whether a terminal would show `text` as it is: no control character
/// but newline, no DEL, no C1 control, no bidi control.
fn terminal_safe(text: &str) -> std::result::Result<(), String> {
    match text.chars().find(|&c| {
        (c < ' ' && c != '\n')
            || ('\x7f'..='\u{9f}').contains(&c)
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }) {
        Some(c) => Err(format!("{c:?} in {text:?}")),
        None => Ok(()),
    }
}

/// `podc --root ROOT ARGS...`
fn podc(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_podc"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run podc")
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", show(out));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// An image whose config strings carry escape sequences, C1 controls and
/// bidi overrides. Its user is in its `/etc/passwd`, so podc resolves it
/// and a `runAsNonRoot` pod quotes it (CreateContainerConfigError).
fn evil_image() -> image_support::TestImage {
    evil_image_as(EVIL_USER)
}

/// [`evil_image`] with another `User`.
fn evil_image_as(user: &str) -> image_support::TestImage {
    use image_support::{file, host_arch, layer, TestImage};
    let config = serde_json::json!({
        "created": EVIL_CREATED,
        "author": "mallory\x1b[8m\u{9b}2J",
        "architecture": host_arch(),
        "os": "linux",
        "config": {
            "User": user,
            "Cmd": ["sh\x1b[1m"],
            "Labels": {"evil\x1b[31m": "v\u{9b}2J\r\nx\u{2066}"},
        },
    });
    let passwd = format!("root:x:0:0::/:/bin/sh\n{user}:x:1000:1000::/:/bin/sh\n");
    TestImage::new(
        vec![layer(
            &[file("etc/passwd", 0o644, passwd.as_bytes())],
            podc::image::unpack::Compression::None,
        )],
        config,
    )
}

/// A fresh store holding [`evil_image`] as `evil:1`.
fn evil_store() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("evil.tar");
    image_support::write_oci_archive(&evil_image(), &archive, None);
    let a = archive.to_str().unwrap();
    stdout_of(&podc(
        root.path(),
        &["image", "import", a, "--name", "evil:1"],
    ));
    root
}

const EVIL_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers:\n  - {name: c, image: 'evil:1'}\n";

#[test]
fn image_strings_reach_no_terminal_raw() {
    let root = evil_store();
    let r = root.path();

    let ls = stdout_of(&podc(r, &["image", "ls"]));
    terminal_safe(&ls).unwrap();
    assert_eq!(ls.lines().count(), 2, "a header and one row: {ls}");
    assert!(ls.contains("\\x1b[2J\\x1b]0;pwned\\x07\\nFAKE-ROW"), "{ls}");

    // JSON stays JSON, with the exact value, escaped by JSON
    let json = stdout_of(&podc(r, &["image", "ls", "-o", "json"]));
    terminal_safe(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["created"], EVIL_CREATED);

    let inspect = stdout_of(&podc(r, &["image", "inspect", "evil:1"]));
    terminal_safe(&inspect).unwrap();
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["created"], EVIL_CREATED);
    assert_eq!(v["config"]["User"], EVIL_USER);
    assert_eq!(
        v["config"]["Labels"]["evil\x1b[31m"],
        "v\u{9b}2J\r\nx\u{2066}"
    );
}

#[test]
fn build_diagnostics_quote_image_values_safely() {
    let root = evil_store();
    let r = root.path();
    let pod = r.join("pod.yaml");
    std::fs::write(&pod, EVIL_POD).unwrap();
    let out_dir = r.join("build");
    let (pod, out_dir) = (pod.to_str().unwrap(), out_dir.to_str().unwrap());
    let out = podc(r, &["build", pod, "-o", out_dir]);
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    terminal_safe(&err).unwrap();
    assert!(
        err.contains("\\x1b]0;pwned\\x07\\u{202e}nobody"),
        "{}",
        show(&out)
    );
    let out = podc(r, &["build", pod, "-o", out_dir, "--diagnostics", "json"]);
    let json = String::from_utf8(out.stdout.clone()).unwrap();
    terminal_safe(&json).unwrap();
    // the diagnostics, then what the build wrote
    let v: serde_json::Value = serde_json::Deserializer::from_str(&json)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        v.as_array().unwrap().iter().any(|d| d["message"]
            .as_str()
            .unwrap()
            .contains("\\x1b]0;pwned\\x07\\u{202e}nobody")),
        "{json}"
    );
}

#[test]
fn apply_get_and_describe_quote_image_values_safely() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    image_support::write_oci_archive(&evil_image_as(BIDI_USER), &p.sd.path("/run/evil.tar"), None);
    p.run_ok(&["image", "import", "/run/evil.tar", "--name", "evil:1"]);
    p.manifest("/srv/p.yaml", EVIL_POD);
    // the pod is installed; its container is refused with the image's user
    let out = p.apply("/srv/p.yaml", &[]);
    let text = show(&out);
    terminal_safe(&text).unwrap();
    assert!(text.contains("CreateContainerConfigError"), "{text}");
    let describe = p.run_ok(&["describe", "pod", "p"]);
    terminal_safe(&describe).unwrap();
    // (how the unit file carries the message is not this test's business)
    assert!(
        describe.contains("non-numeric user (") && describe.contains("\\u{202e}nobody)"),
        "{describe}"
    );
    terminal_safe(&p.run_ok(&["get", "pods"])).unwrap();
    for o in ["json", "yaml"] {
        terminal_safe(&p.run_ok(&["get", "pod", "p", "-o", o])).unwrap();
    }
    let json = p.run_ok(&["get", "pod", "p", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json)?;
    let msg = v["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str();
    // podc quotes the image's user escaped where it writes the reason, so
    // the unit file and every output carry the same, inert text
    assert!(msg.is_some_and(|m| m.contains("\\u{202e}nobody")), "{json}");
    Ok(())
}
