//! A hostile process in a container that is not privileged (root, with the
//! default capabilities: CAP_MKNOD, CAP_CHOWN, CAP_DAC_OVERRIDE, ...), on a
//! real systemd 252 through `podc apply`: it must not change the host's
//! `/dev`, reach the host's pseudo-terminals, read what containerd masks in
//! `/proc` and `/sys`, write kernel settings, or change the pod's files. A
//! privileged container keeps the host's `/dev` and sees everything.
//!
//! The namespaced systemd of the harness shares the machine's `/dev`, so
//! each test first gives that namespace a private copy of it
//! ([`private_host_dev`]): what podc calls "the host's /dev" is then the
//! copy, and a regression (a container writing into it) cannot damage the
//! machine running the tests.
mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use support::podc::{show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Cover the namespace's `/dev` with a tmpfs holding a copy of the
/// machine's nodes and links (`cp -a` makes nodes with `mknod`), a devpts
/// instance, a tmpfs `/dev/shm` and the namespace's mqueue.
fn private_host_dev(p: &Podc) {
    p.sd.sh_ok(
        "set -e; mkdir -p /run/podc-test-machine-dev; \
         mount --bind /dev /run/podc-test-machine-dev; \
         mount -t tmpfs -o mode=755,nosuid tmpfs /dev; \
         cp -a /run/podc-test-machine-dev/. /dev/; \
         umount /run/podc-test-machine-dev; \
         mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts; \
         mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm; \
         mount -t mqueue mqueue /dev/mqueue",
    );
}

/// Every entry of the namespace's `/dev` (submounts excluded) with its
/// type, mode, owner and device numbers.
const DEV_LISTING: &str =
    "find /dev -xdev -exec stat -c '%n|%F|%a|%u:%g|%t:%T' {} + | LC_ALL=C sort";

/// Wait for /run/out/NAME (a hostPath volume) and return it.
fn report(p: &Podc, name: &str) -> String {
    p.sd.sh_ok(&format!(
        "for i in $(seq 300); do test -e /run/out/{name} && break; sleep 0.05; done; cat /run/out/{name}"
    ))
}

/// The value of `key=` in a report.
fn field<'a>(rep: &'a str, key: &str) -> &'a str {
    rep.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in report:\n{rep}"))
}

/// A container of busybox running `script`, its output in /out/NAME.
fn container(name: &str, sc: &str, script: &str) -> String {
    let script = format!(
        "{{ {script}\n}} > /out/{name}.tmp 2>&1; mv /out/{name}.tmp /out/{name}; exec sleep 1000"
    );
    let mut y = format!(
        "  - name: {name}\n    image: busybox:1.36\n    command: [sh, -c, {}]\n    volumeMounts: [{{name: out, mountPath: /out}}]\n",
        serde_json::to_string(&script).unwrap()
    );
    if !sc.is_empty() {
        y.push_str(&format!("    securityContext: {sc}\n"));
    }
    y
}

fn pod(name: &str, spec: &str, containers: &[String]) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{spec}  volumes:\n  - {{name: out, hostPath: {{path: /run/out}}}}\n  containers:\n{}",
        containers.concat()
    )
}

/// What a root container tries against `/dev` and the pod's files.
const DEV_ATTACK: &str = r#"
echo "ls=$(ls -A /dev | tr '\n' ' ')"
for n in null zero full random urandom tty; do echo "node_$n=$(stat -c '%F|%a|%u:%g|%t:%T' /dev/$n)"; done
for l in ptmx fd stdin stdout stderr core; do echo "link_$l=$(readlink /dev/$l)"; done
echo "pts_dev=$(stat -c %d /dev/pts)"
echo "pts_fs=$(grep ' /dev/pts ' /proc/self/mountinfo | sed 's/.* - \([^ ]*\) .*/\1/')"
echo "pts_before=$(ls -A /dev/pts | tr '\n' ' ')"
if exec 3<>/dev/ptmx; then echo "pts_with_pty=$(ls -A /dev/pts | tr '\n' ' ')"; exec 3>&-; else echo pts_with_pty=failed; fi
touch /dev/x; echo touch=$?
mkdir /dev/d; echo mkdir=$?
chmod 777 /dev/null; echo chmod=$?
ln -sf /etc/passwd /dev/zero; echo ln=$?
mknod /dev/sda b 8 0 2>/out/e; echo "mknod=$? $(cat /out/e)"
head -c 1 /dev/sda >/dev/null 2>/out/e; echo "read_sda=$? $(cat /out/e)"
for f in hosts hostname resolv.conf; do
  if { echo evil >> /etc/$f; } 2>/out/e; then echo "write_$f=ok"; else echo "write_$f=$(cat /out/e)"; fi
  if rm -f /etc/$f 2>/out/e; then echo "rm_$f=ok"; else echo "rm_$f=$(cat /out/e)"; fi
done
echo from-container > /dev/shm/podc-hostile-shm; echo shm=$?
"#;

/// What a privileged container reports about its `/dev`.
const DEV_PRIVILEGED: &str = r#"
echo "marker=$(ls /dev/podc-test-marker)"
echo "pts_dev=$(stat -c %d /dev/pts)"
echo "ptmx=$(stat -c %F /dev/ptmx)"
"#;

#[test]
fn writes_into_dev_and_the_pods_files_never_reach_the_host() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    private_host_dev(&p);
    p.sd.sh_ok("mkdir -p -m 1777 /run/out; touch /dev/podc-test-marker");
    let dev_before = p.sd.sh_ok(DEV_LISTING);
    let host_pts = p.sd.sh_ok("stat -c %d /dev/pts").trim().to_string();
    let host_pts_list = p.sd.sh_ok("ls -A /dev/pts");
    let kcore = p.sd.sh("test -e /proc/kcore").status.success();

    let y = pod(
        "hd",
        "",
        &[
            container("root", "{runAsUser: 0}", DEV_ATTACK),
            container("priv", "{privileged: true}", DEV_PRIVILEGED),
        ],
    );
    p.manifest("/srv/hd.yaml", &y);
    let out = p.apply_ok("/srv/hd.yaml", &[]);
    assert!(out.contains("Running 2/2 ready"), "{out}");
    let pod_files = "cd /run/podc/pods/default_hd && cat hosts hostname resolv.conf";
    let files_before = p.sd.sh_ok(pod_files);
    let r = report(&p, "root");
    println!("root container:\n{r}");

    // The host's /dev is as it was: no file, directory, node, mode or
    // link changed.
    assert_eq!(
        p.sd.sh_ok(DEV_LISTING),
        dev_before,
        "the host's /dev changed"
    );
    assert_eq!(p.sd.sh_ok("ls -A /dev/pts"), host_pts_list);
    // (and the machine's own, which the harness keeps apart anyway)
    let null = std::fs::symlink_metadata("/dev/null")?;
    assert!(null.file_type().is_char_device() && null.mode() & 0o777 == 0o666);
    assert!(std::fs::symlink_metadata("/dev/zero")?
        .file_type()
        .is_char_device());

    // The container's own /dev holds runc's set and nothing of the host's.
    let mut expected = vec![
        "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
        "stdout", "tty", "urandom", "zero",
    ];
    if kcore {
        expected.push("core");
        expected.sort();
    }
    assert_eq!(field(&r, "ls"), expected.join(" "), "{r}");
    for (n, rdev) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let want = format!("character special file|666|0:0|{rdev}");
        assert_eq!(field(&r, &format!("node_{n}")), want, "{r}");
    }
    for (l, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        assert_eq!(field(&r, &format!("link_{l}")), target, "{r}");
    }
    if kcore {
        assert_eq!(field(&r, "link_core"), "/proc/kcore", "{r}");
    }
    // A devpts instance of its own: not the host's, none of the host's
    // pseudo-terminals, and /dev/ptmx opens a terminal there.
    assert_eq!(field(&r, "pts_fs"), "devpts", "{r}");
    assert_ne!(field(&r, "pts_dev"), host_pts, "{r}");
    assert_eq!(field(&r, "pts_before"), "ptmx", "{r}");
    assert_eq!(field(&r, "pts_with_pty"), "0 ptmx", "{r}");

    // What it did to its own /dev stayed there; a block device is neither
    // made nor read (DevicePolicy=closed).
    for k in ["touch", "mkdir", "chmod", "ln"] {
        assert_eq!(field(&r, k), "0", "{k}: {r}");
    }
    assert!(field(&r, "read_sda").starts_with('1'), "{r}");
    assert!(!field(&r, "mknod").starts_with('0'), "{r}");

    // The pod's files are read-only binds: neither written nor replaced,
    // and the host's copies are unchanged.
    for f in ["hosts", "hostname", "resolv.conf"] {
        let w = field(&r, &format!("write_{f}"));
        assert!(w.contains("Read-only file system"), "{f}: {r}");
        let rm = field(&r, &format!("rm_{f}"));
        assert!(rm.contains("busy"), "{f}: {r}");
    }
    assert_eq!(p.sd.sh_ok(pod_files), files_before);
    assert!(!files_before.contains("evil"));

    // /dev/shm is the pod's.
    assert_eq!(field(&r, "shm"), "0", "{r}");
    assert_eq!(
        p.sd.sh_ok("cat /run/podc/pods/default_hd/shm/podc-hostile-shm"),
        "from-container\n"
    );
    p.sd.sh_ok("test ! -e /dev/shm/podc-hostile-shm");

    // A privileged container keeps the host's /dev, devpts included.
    let r = report(&p, "priv");
    assert_eq!(field(&r, "marker"), "/dev/podc-test-marker", "{r}");
    assert_eq!(field(&r, "pts_dev"), host_pts, "{r}");
    assert_eq!(field(&r, "ptmx"), "character special file", "{r}");
    Ok(())
}

/// Masked paths: containerd's list, with /proc/interrupts and debugfs and
/// tracefs.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/kernel/debug",
    "/sys/kernel/tracing",
];

/// `PATH=dir:N` (entries), `PATH=file:N` (bytes, up to 4096) or
/// `PATH=absent` for each masked path.
fn look_script() -> String {
    format!(
        "for p in {}; do if [ -d $p ]; then echo \"$p=dir:$(ls -A $p | wc -l)\"; \
         elif [ -e $p ]; then echo \"$p=file:$(head -c 4096 $p | wc -c)\"; \
         else echo \"$p=absent\"; fi; done",
        MASKED.join(" ")
    )
}

/// Writes a confined root container tries against kernel settings.
const KERNEL_WRITES: &str = r#"
b=$(cat /proc/sys/kernel/printk_ratelimit_burst)
if { echo $((b + 1)) > /proc/sys/kernel/printk_ratelimit_burst; } 2>/out/e; then echo procsys=ok; else echo "procsys=$(cat /out/e)"; fi
if [ ! -e /proc/sysrq-trigger ]; then echo sysrq=absent; elif { echo h > /proc/sysrq-trigger; } 2>/out/e; then echo sysrq=ok; else echo "sysrq=$(cat /out/e)"; fi
if touch /sys/podc-x 2>/out/e; then echo sys=ok; else echo "sys=$(cat /out/e)"; fi
if touch /sys/kernel/debug/podc-x 2>/out/e; then echo debugfs=ok; else echo "debugfs=$(cat /out/e)"; fi
if umount /proc/keys 2>/out/e; then echo umount=ok; else echo "umount=$(cat /out/e)"; fi
"#;

#[test]
fn kernel_files_are_masked_and_read_only_in_confined_containers() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    private_host_dev(&p);
    // debugfs and tracefs, in the namespace only, so that there is
    // something to mask.
    p.sd.sh_ok(
        "mkdir -p -m 1777 /run/out; \
         mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug; \
         mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing",
    );
    let look = look_script();
    let host = p.sd.sh_ok(&look);
    println!("host:\n{host}");
    // What the host shows and a container must not see.
    let shown: Vec<&str> = MASKED
        .iter()
        .copied()
        .filter(|m| {
            let v = field(&host, m);
            v != "absent" && !v.ends_with(":0")
        })
        .collect();
    for m in [
        "/proc/interrupts",
        "/proc/keys",
        "/proc/timer_list",
        "/sys/firmware",
        "/sys/kernel/debug",
        "/sys/kernel/tracing",
    ] {
        assert!(shown.contains(&m), "{m} is empty on this host:\n{host}");
    }
    let burst = p.sd.sh_ok("cat /proc/sys/kernel/printk_ratelimit_burst");
    // (a kernel without CONFIG_MAGIC_SYSRQ has none)
    let sysrq = p.sd.sh("test -e /proc/sysrq-trigger").status.success();

    let attack = format!("{look}\n{KERNEL_WRITES}");
    let mut y = pod(
        "mk",
        "",
        &[
            container("own-pid", "{runAsUser: 0}", &attack),
            container("priv", "{privileged: true}", &look),
        ],
    );
    y.push_str("---\n");
    y.push_str(&pod(
        "mh",
        "  hostPID: true\n",
        &[container("host-pid", "{runAsUser: 0}", &attack)],
    ));
    p.manifest("/srv/mk.yaml", &y);
    let out = p.apply("/srv/mk.yaml", &[]);
    assert!(out.status.success(), "{}", show(&out));

    // Both ways the joiner mounts /proc: in the container's own PID
    // namespace (after the clone) and in the host's (before).
    for c in ["own-pid", "host-pid"] {
        let r = report(&p, c);
        println!("{c}:\n{r}");
        for m in &shown {
            let v = field(&r, m);
            assert!(v == "dir:0" || v == "file:0", "{c}: {m} is {v}:\n{r}");
        }
        if !sysrq {
            assert_eq!(field(&r, "sysrq"), "absent", "{c}:\n{r}");
        }
        let writes = ["procsys", "sysrq", "sys", "debugfs"];
        for k in writes.iter().filter(|k| sysrq || **k != "sysrq") {
            assert!(
                field(&r, k).contains("Read-only file system"),
                "{c}: {k}:\n{r}"
            );
        }
        assert!(
            field(&r, "umount").contains("Operation not permitted"),
            "{c}:\n{r}"
        );
    }
    assert_eq!(
        p.sd.sh_ok("cat /proc/sys/kernel/printk_ratelimit_burst"),
        burst
    );

    // A privileged container sees what the host sees.
    let r = report(&p, "priv");
    for m in &shown {
        let kind = |v: &str| v.split(':').next().unwrap_or("").to_string();
        assert_eq!(kind(field(&r, m)), kind(field(&host, m)), "priv: {m}:\n{r}");
        assert!(!field(&r, m).ends_with(":0"), "priv: {m}:\n{r}");
    }
    Ok(())
}
