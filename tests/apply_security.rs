//! securityContext in pods started by `podc apply` on a real systemd 252:
//! what each container process reports about itself (`id`,
//! `/proc/self/status`, `/proc/sys`, writes to its root), against what
//! Kubernetes with containerd/runc gives. Each test boots once and runs
//! several containers.
mod image_support;
mod support;

use support::podc::{show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Kubernetes' default capability set (containerd's, Docker's) as a
/// `/proc/PID/status` mask: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
/// SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE
/// SETFCAP.
const DEFAULT_CAPS: u64 = 0xa80425fb;
const NET_ADMIN: u64 = 1 << 12;

/// Each container writes its report to /out/NAME (a hostPath volume at
/// /run/out inside the namespace), then sleeps.
const REPORT: &str = "{ id; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; \
     echo port_start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
     echo shm_rmid_forced=$(cat /proc/sys/kernel/shm_rmid_forced); \
     if echo x 2>/out/$C.err >/rootfile; then echo root=writable; else echo root=$(cat /out/$C.err); fi; \
     if echo x > /scratch/f; then echo scratch=writable; else echo scratch=failed; fi; \
     if true 2>/out/$C.err </dev/kmsg; then echo kmsg=open; else echo kmsg=$(cat /out/$C.err); fi; \
     if true 2>/out/$C.err >/dev/null; then echo null=open; else echo null=$(cat /out/$C.err); fi; \
     if touch /sys/podc 2>/out/$C.err; then echo sys=writable; else echo sys=$(cat /out/$C.err); fi; \
     if mkdir /sys/fs/cgroup/pids/podc-$C 2>/out/$C.err; then echo cgroup=writable; rmdir /sys/fs/cgroup/pids/podc-$C; else echo cgroup=$(cat /out/$C.err); fi; \
     } > /out/$C.tmp 2>&1; mv /out/$C.tmp /out/$C; exec sleep 1000";

/// A container `name` with `sc` (YAML flow mapping, or "" for none).
fn container(name: &str, sc: &str) -> String {
    let mut y = format!(
        "  - name: {name}\n    image: busybox:1.36\n    env: [{{name: C, value: {name}}}]\n    command: [sh, -c, {}]\n    volumeMounts: [{{name: out, mountPath: /out}}, {{name: scratch, mountPath: /scratch}}]\n",
        serde_json::to_string(REPORT).unwrap()
    );
    if !sc.is_empty() {
        y.push_str(&format!("    securityContext: {sc}\n"));
    }
    y
}

/// Wait for /run/out/NAME and parse its `Key: value` / `key=value` lines.
fn report(p: &Podc, name: &str) -> String {
    p.sd.sh_ok(&format!(
        "for i in $(seq 200); do test -e /run/out/{name} && break; sleep 0.05; done; cat /run/out/{name}"
    ))
}

fn field<'a>(rep: &'a str, key: &str) -> &'a str {
    rep.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix(':').or_else(|| r.strip_prefix('=')))
        })
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in report:\n{rep}"))
}

fn mask(rep: &str, key: &str) -> u64 {
    u64::from_str_radix(field(rep, key), 16).unwrap_or_else(|e| panic!("{key}: {e}\n{rep}"))
}

/// CapInh, CapPrm, CapEff, CapBnd, CapAmb.
fn caps(rep: &str) -> [u64; 5] {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].map(|k| mask(rep, k))
}

#[test]
fn users_groups_capabilities_privileges_read_only_root_and_sysctls() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.sd.sh_ok("mkdir -p -m 1777 /run/out");
    // Every capability there is, as far as this machine's systemd has them
    // (a sandboxed test machine may lack some).
    let all_caps = mask(&p.sd.sh_ok("grep CapBnd /proc/1/status"), "CapBnd");
    let mut y = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sec\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext:\n    runAsUser: 1000\n    runAsGroup: 2000\n    supplementalGroups: [3000, 4000]\n    sysctls:\n    - {name: net.ipv4.ip_unprivileged_port_start, value: '80'}\n    - {name: kernel.shm_rmid_forced, value: '1'}\n  volumes:\n  - {name: out, hostPath: {path: /run/out}}\n  - {name: scratch, emptyDir: {}}\n  containers:\n",
    );
    let cs: &[(&str, &str)] = &[
        ("pod-level", ""),
        ("override", "{runAsUser: 1001, runAsGroup: 1002}"),
        ("root", "{runAsUser: 0, runAsGroup: 0}"),
        (
            "root-netadmin",
            "{runAsUser: 0, capabilities: {drop: [ALL], add: [NET_ADMIN]}}",
        ),
        ("user-netadmin", "{capabilities: {add: [NET_ADMIN]}}"),
        ("no-escalation", "{allowPrivilegeEscalation: false}"),
        ("read-only", "{runAsUser: 0, readOnlyRootFilesystem: true}"),
        ("privileged", "{runAsUser: 0, privileged: true}"),
    ];
    for (name, sc) in cs {
        y.push_str(&container(name, sc));
    }
    p.manifest("/srv/sec.yaml", &y);
    let out = p.apply_ok("/srv/sec.yaml", &[]);
    assert!(
        out.contains("pod default/sec created: Running 8/8 ready"),
        "{out}"
    );

    // Pod-level user, group and supplementalGroups; a non-root process has
    // no effective, permitted, inheritable or ambient capabilities, as with
    // containerd (Kubernetes gives no ambient capabilities), and the
    // default bounding set.
    let r = report(&p, "pod-level");
    assert!(r.contains("uid=1000 gid=2000 groups=2000,3000,4000"), "{r}");
    assert_eq!(caps(&r), [0, 0, 0, DEFAULT_CAPS, 0], "{r}");
    assert_eq!(field(&r, "NoNewPrivs"), "0", "{r}");

    // The container's user and group win over the pod's.
    let r = report(&p, "override");
    assert!(r.contains("uid=1001 gid=1002 groups=1002,3000,4000"), "{r}");

    // Root gets exactly the default set, not full root.
    let r = report(&p, "root");
    assert!(
        r.contains("uid=0(root) gid=0(root)") || r.contains("uid=0 gid=0"),
        "{r}"
    );
    assert_eq!(
        caps(&r),
        [0, DEFAULT_CAPS, DEFAULT_CAPS, DEFAULT_CAPS, 0],
        "{r}"
    );

    // drop ALL, add NET_ADMIN.
    let r = report(&p, "root-netadmin");
    assert_eq!(caps(&r), [0, NET_ADMIN, NET_ADMIN, NET_ADMIN, 0], "{r}");

    // A non-root user with an added capability: in the bounding set only,
    // not ambient (as containerd does).
    let r = report(&p, "user-netadmin");
    assert_eq!(caps(&r), [0, 0, 0, DEFAULT_CAPS | NET_ADMIN, 0], "{r}");

    let r = report(&p, "no-escalation");
    assert_eq!(field(&r, "NoNewPrivs"), "1", "{r}");

    // readOnlyRootFilesystem: EROFS on /, volumes still writable. Without
    // it, a non-root user cannot write / (owned by root), but root can.
    let r = report(&p, "read-only");
    assert!(field(&r, "root").contains("Read-only file system"), "{r}");
    assert_eq!(field(&r, "scratch"), "writable", "{r}");
    assert_eq!(field(&report(&p, "root"), "root"), "writable");

    // privileged: every capability, and the host's devices.
    let r = report(&p, "privileged");
    assert_eq!(caps(&r), [0, all_caps, all_caps, all_caps, 0], "{r}");
    assert_eq!(field(&r, "NoNewPrivs"), "0", "{r}");
    assert_eq!(field(&r, "kmsg"), "open", "{r}");
    assert!(!field(&r, "sys").contains("Read-only"), "{r}");
    assert_eq!(field(&r, "cgroup"), "writable", "{r}");

    // Not privileged, even root: no host devices but the pseudo ones (its
    // /dev is its own, tests/hostile_container.rs), and a read-only /sys.
    let r = report(&p, "root");
    assert!(field(&r, "kmsg").contains("no such file"), "{r}");
    assert_eq!(field(&r, "null"), "open", "{r}");
    assert!(field(&r, "sys").contains("Read-only file system"), "{r}");
    // ... down to every mount below it: the cgroup hierarchies too.
    assert!(field(&r, "cgroup").contains("Read-only file system"), "{r}");

    // Sysctls are set in the pod's namespaces, visible in every container,
    // and leave the host's alone.
    for (name, _) in cs {
        let r = report(&p, name);
        assert_eq!(field(&r, "port_start"), "80", "{name}: {r}");
        assert_eq!(field(&r, "shm_rmid_forced"), "1", "{name}: {r}");
    }
    assert_eq!(
        p.sd.sh_ok("cat /proc/sys/kernel/shm_rmid_forced").trim(),
        "0"
    );
    Ok(())
}

#[test]
fn run_as_non_root_refuses_a_root_image_with_a_reason() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.sd.sh_ok("mkdir -p -m 1777 /run/out");
    // busybox:1.36 in the test store has no User: it runs as root.
    let y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nonroot\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext:\n    runAsNonRoot: true\n  containers:\n  - name: rooty\n    image: busybox:1.36\n    command: [sh, -c, 'echo I ran > /out/rooty; exec sleep 1000']\n    volumeMounts: [{name: out, mountPath: /out}]\n  - name: user\n    image: busybox:1.36\n    securityContext: {runAsUser: 1000}\n    command: [sh, -c, 'id > /out/user; exec sleep 1000']\n    volumeMounts: [{name: out, mountPath: /out}]\n  volumes:\n  - {name: out, hostPath: {path: /run/out}}\n";
    p.manifest("/srv/nonroot.yaml", y);
    let out = p.apply("/srv/nonroot.yaml", &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{}", show(&out));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    const MSG: &str = "container has runAsNonRoot and image will run as root";
    assert!(
        text.contains("pod default/nonroot created: CreateContainerConfigError 1/2 ready"),
        "{text}"
    );
    assert!(text.contains("CreateContainerConfigError"), "{text}");
    assert!(text.contains(MSG), "{text}");
    // The root process never ran; the other container did.
    assert!(report(&p, "user").contains("uid=1000"));
    p.sd.sh_ok("test ! -e /run/out/rooty");

    let json: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "nonroot", "-o", "json"]))?;
    assert_eq!(json["status"]["phase"], "Pending", "{json}");
    let st = &json["status"]["containerStatuses"][0];
    assert_eq!(st["name"], "rooty");
    assert_eq!(
        st["state"]["waiting"]["reason"], "CreateContainerConfigError",
        "{st}"
    );
    assert!(
        st["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(MSG)),
        "{st}"
    );
    let d = p.run_ok(&["describe", "pod", "nonroot"]);
    assert!(
        d.contains("Reason:       CreateContainerConfigError"),
        "{d}"
    );
    assert!(d.contains(MSG), "{d}");
    let table = p.run_ok(&["get", "pods"]);
    assert!(table.contains("CreateContainerConfigError"), "{table}");
    p.sd.sh_ok("test ! -e /run/out/rooty");
    Ok(())
}

/// An image of busybox whose `/etc/passwd` has `app` (1234, group 4321)
/// and whose `/etc/group` has `staff` (555), running as `user`.
fn named_image(user: &str) -> image_support::TestImage {
    use image_support::*;
    use podc::image::unpack::Compression;
    let mut layers = busybox_layers();
    layers.push(vec![
        file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321::/:/bin/sh\n",
        ),
        file("etc/group", 0o644, b"root:x:0:\nstaff:x:555:\n"),
    ]);
    let mut config = busybox_config();
    config["config"]["User"] = serde_json::json!(user);
    TestImage::new(
        layers.iter().map(|l| layer(l, Compression::Gzip)).collect(),
        config,
    )
}

#[test]
fn image_user_names_resolve_in_the_image() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.sd.sh_ok("mkdir -p -m 1777 /run/out");
    let t = tempfile::tempdir()?;
    for (tag, user) in [("1", "app"), ("2", "1000:staff"), ("3", "ghost")] {
        let archive = t.path().join(format!("named{tag}.tar"));
        image_support::write_oci_archive(
            &named_image(user),
            &archive,
            Some(&format!("example.test/named:{tag}")),
        );
        p.sd.copy_in(&archive, &format!("/run/named{tag}.tar"))?;
        p.run_ok(&["image", "import", &format!("/run/named{tag}.tar")]);
    }
    let c = |name: &str, tag: &str, sc: &str| {
        format!("  - name: {name}\n    image: example.test/named:{tag}\n    command: [/bin/busybox, sh, -c, 'busybox id > /out/{name}; exec busybox sleep 1000']\n    volumeMounts: [{{name: out, mountPath: /out}}]\n    securityContext: {{{sc}}}\n")
    };
    let y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: named\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - {{name: out, hostPath: {{path: /run/out}}}}\n  containers:\n{}{}{}",
        c("by-name", "1", ""),
        c("group-name", "2", ""),
        // Kubernetes does not resolve names for runAsNonRoot.
        c("non-root", "1", "runAsNonRoot: true"),
    );
    p.manifest("/srv/named.yaml", &y);
    let out = p.apply("/srv/named.yaml", &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text.contains("container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root"),
        "{text}"
    );
    let r = report(&p, "by-name");
    assert!(r.starts_with("uid=1234(app) gid=4321 "), "{r}");
    let r = report(&p, "group-name");
    assert!(r.starts_with("uid=1000 gid=555(staff) "), "{r}");
    p.sd.sh_ok("test ! -e /run/out/non-root");

    // A name the image does not have is a located build error.
    p.manifest(
        "/srv/bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: example.test/named:3\n    command: [/bin/busybox, sleep, '1']\n",
    );
    let out = p.apply("/srv/bad.yaml", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        err.contains("/srv/bad.yaml:7:5: error: spec.containers[0]: image example.test/named:3 runs as user \"ghost\", which podc cannot resolve: user \"ghost\" is not in the image's /etc/passwd"),
        "{err}"
    );
    p.sd.sh_ok("test ! -e /etc/systemd/system/podc_default_bad.target");
    Ok(())
}
