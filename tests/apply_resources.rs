//! Resources in running pods (`podc apply` on a real systemd 252, cgroup v1
//! here and in CI): memory limits are enforced and a container past its
//! limit is reported `OOMKilled`; a CPU limit is a CFS quota that holds a
//! busy loop to its share; requests become Kubernetes' `cpu.shares`; the
//! pod's slice carries Kubernetes' pod cgroup totals. Every figure is read
//! from the kernel's cgroup files, not from systemd's properties.
mod support;

use support::podc::{show, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MI: u64 = 1 << 20;

/// A cgroup file of pod `default/<pod>` in controller `ctrl`: the pod's
/// slice (`unit` = None) or one of its units.
fn cg_path(p: &Podc, ctrl: &str, pod: &str, unit: Option<&str>, file: &str) -> String {
    let mut path = format!(
        "/sys/fs/cgroup/{ctrl}/{}/podc.slice/podc-default_{pod}.slice",
        p.sd.name()
    );
    if let Some(u) = unit {
        path.push('/');
        path.push_str(u);
    }
    format!("{path}/{file}")
}

fn cg(p: &Podc, ctrl: &str, pod: &str, unit: Option<&str>, file: &str) -> String {
    let path = cg_path(p, ctrl, pod, unit, file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn cg_u64(p: &Podc, ctrl: &str, pod: &str, unit: Option<&str>, file: &str) -> u64 {
    let v = cg(p, ctrl, pod, unit, file);
    v.parse()
        .unwrap_or_else(|_| panic!("{ctrl} {unit:?} {file}: {v:?}"))
}

fn unit(pod: &str, c: &str) -> String {
    format!("podc_default_{pod}_{c}.service")
}

/// Wait (bounded) until `systemctl show -P SubState UNIT` is `want`.
fn wait_sub_state(p: &Podc, unit: &str, want: &str) {
    p.sd.sh_ok(&format!(
        "for i in $(seq 400); do [ \"$(systemctl show -P SubState {unit})\" = {want} ] && exit 0; sleep 0.05; done; \
         systemctl status --no-pager {unit}; exit 1"
    ));
}

fn json(p: &Podc, pod: &str) -> serde_json::Value {
    serde_json::from_str(&p.run_ok(&["get", "pods", pod, "-o", "json"])).expect("get -o json")
}

fn container<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["status"]["containerStatuses"]
        .as_array()
        .expect("containerStatuses")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no status for {name}: {j}"))
}

/// Allocates ~200 MiB in the shell itself (command substitution into a
/// variable), far past the limits below.
const HOG: &str = "x=$(head -c 200m /dev/zero | tr '\\0' a); echo survived ${#x}";

#[test]
fn a_container_past_its_memory_limit_is_oom_killed_and_reported_oomkilled() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("mem", &["prep", "idle", "hog", "killed"]);
    p.rootfs("again", &["hog"]);
    let hog = serde_json::to_string(HOG)?;
    p.manifest(
        "/srv/mem.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: mem\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 3\n  initContainers:\n  - name: prep\n    image: busybox:1.36\n    command: [\"true\"]\n    resources:\n      limits: {{memory: 256Mi}}\n  containers:\n  - name: idle\n    image: busybox:1.36\n    command: [sleep, '1000']\n    resources:\n      requests: {{memory: 16Mi}}\n      limits: {{memory: 48Mi}}\n  - name: hog\n    image: busybox:1.36\n    command: [sh, -c, {hog}]\n    resources:\n      limits: {{memory: 32Mi}}\n  - name: killed\n    image: busybox:1.36\n    command: [sleep, '1000']\n    resources:\n      limits: {{memory: 32Mi}}\n"
        ),
    );
    p.manifest(
        "/srv/again.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: again\nspec:\n  terminationGracePeriodSeconds: 3\n  containers:\n  - name: hog\n    image: busybox:1.36\n    command: [sh, -c, {hog}]\n    resources:\n      limits: {{memory: 24Mi}}\n"
        ),
    );
    // The hog may still be allocating when apply settles, so apply's exit
    // status is not asserted here; the report of a later apply is.
    let out = p.apply("/srv/mem.yaml", &[]);
    println!("{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("requests.memory is not enforced"),
        "cgroup v1 has no memory protection and apply says so: {stderr}"
    );

    // The limits are the kernel's: memory.limit_in_bytes of each unit, and
    // the pod total on the slice (the init container's 256Mi beats the
    // apps' 48 + 32 + 32).
    let idle = unit("mem", "idle");
    let limit = cg_u64(&p, "memory", "mem", Some(&idle), "memory.limit_in_bytes");
    let slice = cg_u64(&p, "memory", "mem", None, "memory.limit_in_bytes");
    println!("memory.limit_in_bytes: idle {limit}, pod slice {slice}");
    assert_eq!(limit, 48 * MI);
    assert_eq!(slice, 256 * MI);
    // No MemoryMin= on v1 (it would be a dead directive).
    assert_eq!(p.prop(&idle, "MemoryMin"), "0");

    let hog_unit = unit("mem", "hog");
    wait_sub_state(&p, &hog_unit, "failed");
    // systemd itself only saw a SIGKILL...
    assert_eq!(p.prop(&hog_unit, "Result"), "signal");
    assert_eq!(p.prop(&hog_unit, "ExecMainStatus"), "9");
    // ...podc's check found the kernel's OOM kill and said so.
    let post = p.prop(&hog_unit, "ExecStopPost");
    assert!(
        post.contains("oom-check") && post.contains("status=3"),
        "{post}"
    );
    // A container SIGKILLed by someone else is an Error, not OOMKilled.
    let killed = unit("mem", "killed");
    p.sd.sh_ok(&format!("systemctl kill -s KILL {killed}"));
    wait_sub_state(&p, &killed, "failed");
    assert!(p.prop(&killed, "ExecStopPost").contains("status=0"));

    let j = json(&p, "mem");
    let h = container(&j, "hog");
    assert_eq!(h["state"]["terminated"]["reason"], "OOMKilled", "{h}");
    assert_eq!(h["state"]["terminated"]["exitCode"], 137, "{h}");
    let k = container(&j, "killed");
    assert_eq!(k["state"]["terminated"]["reason"], "Error", "{k}");
    assert_eq!(k["state"]["terminated"]["exitCode"], 137, "{k}");
    assert!(container(&j, "idle")["state"]["running"].is_object());

    let d = p.run_ok(&["describe", "pod", "mem"]);
    println!("{d}");
    let hog_part = &d[d.find("  hog:").expect("hog in describe")..];
    assert!(
        hog_part.contains("Reason:       OOMKilled"),
        "describe: {d}"
    );

    // Apply again: nothing changed, and the report names the OOM kill,
    // with the check's journal line.
    let out = p.apply("/srv/mem.yaml", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text.contains(&format!(
            "container hog ({hog_unit}): OOMKilled, systemd Result=signal, exit status 137"
        )),
        "{text}"
    );
    assert!(
        text.contains("podc: OOMKilled: the kernel's OOM killer killed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("container killed ({killed}): Error")),
        "{text}"
    );
    assert!(!text.contains("survived"), "{text}");

    // restartPolicy Always: waiting to restart, the last run OOMKilled.
    let out = p.apply("/srv/again.yaml", &[]);
    println!("{}", show(&out));
    let again = unit("again", "hog");
    wait_sub_state(&p, &again, "auto-restart");
    let j = json(&p, "again");
    let h = container(&j, "hog");
    assert_eq!(h["state"]["waiting"]["reason"], "CrashLoopBackOff", "{h}");
    assert_eq!(h["lastState"]["terminated"]["reason"], "OOMKilled", "{h}");
    let out = p.apply("/srv/again.yaml", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains(&format!(
            "container hog ({again}): CrashLoopBackOff (last run: OOMKilled)"
        )),
        "{text}"
    );
    Ok(())
}

/// A `cpuacct` cgroup holding unit `u`'s processes, for measuring. systemd
/// 252 does not manage `cpuacct` on this machine, where it is mounted apart
/// from `cpu` (so `CPUAccounting=yes` gives no usage here): the test puts
/// the unit's processes into a cpuacct group of its own instance, which
/// systemd leaves alone. The busy loops are single shell processes.
fn cpuacct_group(p: &Podc, pod: &str, u: &str) -> String {
    let dir = format!("/sys/fs/cgroup/cpuacct/{}/measure-{u}", p.sd.name());
    std::fs::create_dir_all(&dir).expect("cpuacct group");
    let procs = cg(p, "cpu", pod, Some(u), "cgroup.procs");
    assert!(!procs.is_empty(), "{u} has no processes");
    for pid in procs.lines() {
        std::fs::write(format!("{dir}/cgroup.procs"), pid).expect("move into cpuacct group");
    }
    dir
}

/// cpuacct usage (ns) of a group, and the wall clock.
fn usage(dir: &str) -> (u64, std::time::Instant) {
    let v = std::fs::read_to_string(format!("{dir}/cpuacct.usage")).expect("cpuacct.usage");
    (v.trim().parse().expect("usage"), std::time::Instant::now())
}

fn cpu_stat(p: &Podc, pod: &str, u: &str, key: &str) -> u64 {
    cg(p, "cpu", pod, Some(u), "cpu.stat")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in cpu.stat of {u}"))
}

#[test]
fn a_200m_cpu_limit_holds_a_busy_loop_to_a_fifth_of_a_cpu() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("cpu", &["capped", "free"]);
    p.rootfs("totals", &["init", "a", "b"]);
    p.manifest(
        "/srv/cpu.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: cpu\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: capped\n    image: busybox:1.36\n    command: [sh, -c, 'while :; do :; done']\n    resources:\n      limits: {cpu: 200m}\n  - name: free\n    image: busybox:1.36\n    command: [sleep, '1000']\n    resources:\n      requests: {cpu: 100m}\n",
    );
    p.manifest(
        "/srv/totals.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: totals\nspec:\n  terminationGracePeriodSeconds: 1\n  initContainers:\n  - name: init\n    image: busybox:1.36\n    command: [\"true\"]\n    resources:\n      limits: {cpu: 1500m, memory: 8Mi}\n  containers:\n  - name: a\n    image: busybox:1.36\n    command: [sleep, '1000']\n    resources:\n      requests: {cpu: 250m}\n      limits: {cpu: 300m, memory: 16Mi}\n  - name: b\n    image: busybox:1.36\n    command: [sleep, '1000']\n    resources:\n      limits: {cpu: 205m, memory: 16Mi}\n",
    );
    let out = p.apply_ok("/srv/cpu.yaml", &[]);
    assert!(out.contains("Running 2/2 ready"), "{out}");
    let capped = unit("cpu", "capped");
    let free = unit("cpu", "free");

    // The quota and the shares, as the kernel has them: Kubernetes'
    // MilliCPUToQuota (200m → 20 ms per 100 ms) and MilliCPUToShares (the
    // request defaults to the limit: 200m → 204; 100m → 102).
    assert_eq!(
        cg_u64(&p, "cpu", "cpu", Some(&capped), "cpu.cfs_quota_us"),
        20_000
    );
    assert_eq!(
        cg_u64(&p, "cpu", "cpu", Some(&capped), "cpu.cfs_period_us"),
        100_000
    );
    assert_eq!(cg_u64(&p, "cpu", "cpu", Some(&capped), "cpu.shares"), 204);
    assert_eq!(cg(&p, "cpu", "cpu", Some(&free), "cpu.cfs_quota_us"), "-1");
    assert_eq!(cg_u64(&p, "cpu", "cpu", Some(&free), "cpu.shares"), 102);
    // Pod slice: no quota (free has no limit), shares of 300m.
    assert_eq!(cg(&p, "cpu", "cpu", None, "cpu.cfs_quota_us"), "-1");
    assert_eq!(cg_u64(&p, "cpu", "cpu", None, "cpu.shares"), 307);

    // Measure both busy loops over 3 s of wall time.
    // Measure the busy loop over 3 s of wall time (the only busy process
    // of this systemd, so other helpers' load on the machine is shared
    // with the whole instance, not split further).
    let capped_acct = cpuacct_group(&p, "cpu", &capped);
    let throttled0 = cpu_stat(&p, "cpu", &capped, "nr_throttled");
    let (c0, t0) = usage(&capped_acct);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (c1, t1) = usage(&capped_acct);
    let throttled = cpu_stat(&p, "cpu", &capped, "nr_throttled") - throttled0;
    let wall = t1.duration_since(t0).as_nanos() as f64;
    let capped_share = (c1 - c0) as f64 / wall * 100.0;
    println!(
        "busy loop with limits.cpu 200m: {capped_share:.1}% of one CPU (throttled in {throttled} of ~30 periods)"
    );
    assert!(
        (12.0..=28.0).contains(&capped_share),
        "a 200m limit should give ~20% of one CPU, measured {capped_share:.1}%"
    );
    // The quota is what holds it: the kernel throttled it in most of the
    // ~30 periods. Without a quota nr_throttled stays 0.
    assert!(throttled >= 10, "throttled in {throttled} periods");

    // Pod totals on the slice, Kubernetes' pod cgroup: limits summed over
    // the apps (300m + 205m, 16Mi + 16Mi) unless an init container needs
    // more (1500m), requests likewise (250m + 205m < 1500m).
    let out = p.apply_ok("/srv/totals.yaml", &[]);
    assert!(out.contains("Running 2/2 ready"), "{out}");
    assert_eq!(
        cg_u64(&p, "cpu", "totals", None, "cpu.cfs_quota_us"),
        150_000
    );
    assert_eq!(cg_u64(&p, "cpu", "totals", None, "cpu.shares"), 1536);
    assert_eq!(
        cg_u64(&p, "memory", "totals", None, "memory.limit_in_bytes"),
        32 * MI
    );
    let b = unit("totals", "b");
    assert_eq!(
        cg_u64(&p, "cpu", "totals", Some(&b), "cpu.cfs_quota_us"),
        20_500
    );
    // Kubernetes: 209 shares; a v1 weight moves in steps of 10.24 shares.
    assert_eq!(cg_u64(&p, "cpu", "totals", Some(&b), "cpu.shares"), 204);
    let a = unit("totals", "a");
    assert_eq!(cg_u64(&p, "cpu", "totals", Some(&a), "cpu.shares"), 256);

    // For the record: the same loop without a limit, alone (not asserted:
    // it gets whatever the machine's other load leaves).
    p.run_ok(&["delete", "cpu", "totals"]);
    p.rootfs("nocap", &["loop"]);
    p.manifest(
        "/srv/nocap.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nocap\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: loop\n    image: busybox:1.36\n    command: [sh, -c, 'while :; do :; done']\n    resources:\n      requests: {cpu: 200m}\n",
    );
    p.apply_ok("/srv/nocap.yaml", &[]);
    let lp = unit("nocap", "loop");
    let acct = cpuacct_group(&p, "nocap", &lp);
    let (u0, t0) = usage(&acct);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (u1, t1) = usage(&acct);
    let share = (u1 - u0) as f64 / t1.duration_since(t0).as_nanos() as f64 * 100.0;
    println!("the same busy loop without a limit: {share:.1}% of one CPU");
    assert_eq!(cg(&p, "cpu", "nocap", Some(&lp), "cpu.cfs_quota_us"), "-1");
    Ok(())
}
