//! The pod infra process on a real systemd: hand-written units of the shape
//! podc will render (design §2), checked the way a user would.
mod support;

use support::helper::static_podc_pause;
use support::systemd::Systemd;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const PAUSE: &str = "/run/podc-test/podc-pause";

fn infra_unit(pod: &str, extra_args: &str) -> String {
    format!(
        "[Unit]\nDescription=podc infra for pod {pod}\n\n[Service]\nType=notify\n\
         ExecStart={PAUSE} --pod-id {pod} --hostname {pod}-host --pod-ip 10.88.0.5 \
         --host-alias 10.1.2.3=foo.remote,bar.remote {extra_args}\n"
    )
}

fn container_unit(pod: &str, exec: &str, extra: &str) -> String {
    format!(
        "[Unit]\nBindsTo={pod}-infra.service\nAfter={pod}-infra.service\n\n[Service]\n\
         NetworkNamespacePath=/run/podc/pods/{pod}/ns/net\n\
         IPCNamespacePath=/run/podc/pods/{pod}/ns/ipc\n{extra}ExecStart={exec}\n"
    )
}

fn main_pid(sd: &Systemd, unit: &str) -> String {
    sd.sh_ok(&format!("systemctl show -P MainPID {unit}"))
        .trim()
        .to_string()
}

fn vm_rss_kb(sd: &Systemd, pid: &str) -> u64 {
    let status = sd.sh_ok(&format!("cat /proc/{pid}/status"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn infra_unit_shares_net_and_ipc_and_cleans_up() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    sd.copy_in(static_podc_pause(), PAUSE)?;
    let pod = "demo";
    sd.write_file("/run/demo-www/index.html", b"hello from the server\n")?;
    sd.write_unit(&format!("{pod}-infra.service"), &infra_unit(pod, ""))?;
    sd.write_unit(
        &format!("{pod}-server.service"),
        &container_unit(
            pod,
            "/bin/busybox httpd -f -p 127.0.0.1:47123 -h /run/demo-www",
            "",
        ),
    )?;
    // The client retries briefly: Type=simple says "started" before httpd
    // has bound its socket. Its answer goes to a file the test reads.
    sd.write_unit(
        &format!("{pod}-client.service"),
        &container_unit(
            pod,
            "/bin/sh -c 'for i in $(seq 100); do busybox wget -q -O /run/demo-client.out http://127.0.0.1:47123/ && exec sleep infinity; sleep 0.05; done; exit 1'",
            "Type=simple\n",
        )
        .replace("After=", &format!("After={pod}-server.service "))
    )?;
    sd.write_unit(
        &format!("{pod}.target"),
        &format!(
            "[Unit]\nWants={pod}-infra.service {pod}-server.service {pod}-client.service\n\
             After={pod}-infra.service {pod}-server.service {pod}-client.service\n"
        ),
    )?;
    sd.reload();
    sd.sh_ok(&format!("systemctl start {pod}.target"));

    // Namespace files are pinned where containers (and `ip netns`-like tools) find them.
    let dir = format!("/run/podc/pods/{pod}");
    sd.sh_ok(&format!("test -e {dir}/ns/net && test -e {dir}/ns/ipc && test -e {dir}/ns/uts && ! test -e {dir}/ns/pid"));
    let pinned = sd
        .sh_ok(&format!("stat -L -c %i {dir}/ns/net"))
        .trim()
        .to_string();

    // Both services are in that very network namespace, not the host's.
    let server = main_pid(&sd, &format!("{pod}-server.service"));
    let client = main_pid(&sd, &format!("{pod}-client.service"));
    let ns_of = |pid: &str| {
        sd.sh_ok(&format!("stat -L -c %i /proc/{pid}/ns/net"))
            .trim()
            .to_string()
    };
    assert_eq!(ns_of(&server), pinned);
    assert_eq!(ns_of(&client), pinned);
    assert_ne!(
        ns_of("1"),
        pinned,
        "pod must not use the host network namespace"
    );
    let ipc_of = |pid: &str| {
        sd.sh_ok(&format!("stat -L -c %i /proc/{pid}/ns/ipc"))
            .trim()
            .to_string()
    };
    assert_eq!(ipc_of(&server), ipc_of(&client));
    assert_ne!(ipc_of(&server), ipc_of("1"));

    // The client reached the server over the pod's 127.0.0.1.
    sd.sh_ok(&format!("for i in $(seq 50); do systemctl is-active -q {pod}-client.service && test -s /run/demo-client.out && break; sleep 0.1; done"));
    assert_eq!(
        sd.sh_ok("cat /run/demo-client.out"),
        "hello from the server\n"
    );
    // ...and the host's loopback does not have that server.
    assert!(!sd
        .sh("busybox wget -q -T 1 -O - http://127.0.0.1:47123/")
        .status
        .success());

    // Pod files: Kubernetes' hosts format, hostname, resolv.conf from the host.
    let hosts = sd.sh_ok(&format!("cat {dir}/hosts"));
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"),
        "{hosts}"
    );
    assert!(hosts.contains("10.88.0.5\tdemo-host\n"), "{hosts}");
    assert!(
        hosts.ends_with("\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\tbar.remote\n"),
        "{hosts}"
    );
    assert_eq!(sd.sh_ok(&format!("cat {dir}/hostname")), "demo-host\n");
    assert_eq!(
        sd.sh_ok(&format!("cat {dir}/resolv.conf")),
        sd.sh_ok("cat /etc/resolv.conf")
    );
    // Hostname and lo were set inside the pod's UTS/net namespaces.
    let infra = main_pid(&sd, &format!("{pod}-infra.service"));
    assert_eq!(
        sd.sh_ok(&format!("nsenter -t {infra} -u hostname")).trim(),
        "demo-host"
    );
    let lo = sd.sh_ok(&format!(
        "nsenter -t {infra} -n cat /sys/class/net/lo/operstate /sys/class/net/lo/flags"
    ));
    assert!(
        lo.lines()
            .nth(1)
            .is_some_and(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).unwrap() & 1 == 1),
        "lo not up: {lo}"
    );

    let rss = vm_rss_kb(&sd, &infra);
    println!("podc-pause VmRSS: {rss} kB (pod without PID namespace)");
    assert!(rss < 1024, "pause RSS {rss} kB >= 1 MB");

    // Stopping the infra unit stops the pod (BindsTo=) and removes everything.
    sd.sh_ok(&format!("systemctl stop {pod}-infra.service"));
    for u in ["server", "client", "infra"] {
        let out = sd.sh(&format!("systemctl is-active {pod}-{u}.service"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "inactive",
            "{u}"
        );
    }
    assert_eq!(
        sd.sh_ok(&format!("systemctl show -P Result {pod}-infra.service"))
            .trim(),
        "success",
        "pause exits 0 on SIGTERM"
    );
    assert!(!sd.path(&dir).exists(), "{dir} left behind");
    assert!(
        !sd.sh_ok("cat /proc/self/mountinfo")
            .contains("/run/podc/pods/"),
        "ns mount left behind"
    );
    Ok(())
}

#[test]
fn infra_with_pid_namespace_runs_a_pod_init() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    sd.copy_in(static_podc_pause(), PAUSE)?;
    let pod = "shared";
    sd.write_unit(&format!("{pod}-infra.service"), &infra_unit(pod, "--pid"))?;
    sd.reload();
    sd.sh_ok(&format!("systemctl start {pod}-infra.service"));
    let dir = format!("/run/podc/pods/{pod}");
    let main = main_pid(&sd, &format!("{pod}-infra.service"));
    // The main process stays in the host's PID namespace; its only child
    // is PID 1 of the pod's PID namespace, pinned at ns/pid.
    let child = sd
        .sh_ok(&format!("cat /proc/{main}/task/{main}/children"))
        .trim()
        .to_string();
    assert!(
        !child.is_empty() && !child.contains(' '),
        "children: {child:?}"
    );
    let pinned = sd
        .sh_ok(&format!("stat -L -c %i {dir}/ns/pid"))
        .trim()
        .to_string();
    assert_eq!(
        sd.sh_ok(&format!("stat -L -c %i /proc/{child}/ns/pid"))
            .trim(),
        pinned
    );
    assert_eq!(
        sd.sh_ok(&format!("grep NSpid /proc/{child}/status"))
            .split_whitespace()
            .last(),
        Some("1")
    );
    // An orphan in the pod's PID namespace is reaped by the pod init: no zombie.
    sd.sh_ok(&format!(
        "nsenter --pid={dir}/ns/pid -- sh -c 'sh -c \"sleep 0.2 &\" ; true'"
    ));
    let rss_main = vm_rss_kb(&sd, &main);
    let rss_child = vm_rss_kb(&sd, &child);
    println!("podc-pause VmRSS with PID namespace: main {rss_main} kB, pod init {rss_child} kB");
    assert!(rss_main < 1024 && rss_child < 1024);
    sd.sh_ok(&format!("systemctl stop {pod}-infra.service"));
    assert_eq!(
        sd.sh_ok(&format!("systemctl show -P Result {pod}-infra.service"))
            .trim(),
        "success"
    );
    assert!(!sd.path(&dir).exists());
    assert!(
        !sd.path(format!("/proc/{child}")).exists(),
        "pod init still running"
    );
    Ok(())
}

/// A pause killed with SIGKILL cannot clean up; the next start of the infra
/// unit must converge anyway (stale ns mounts detached, files rewritten).
#[test]
fn infra_restarts_cleanly_after_kill_9() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    sd.copy_in(static_podc_pause(), PAUSE)?;
    let pod = "k9";
    sd.write_unit(&format!("{pod}-infra.service"), &infra_unit(pod, ""))?;
    sd.reload();
    sd.sh_ok(&format!("systemctl start {pod}-infra.service"));
    let dir = format!("/run/podc/pods/{pod}");
    let old_ns = sd.sh_ok(&format!("stat -L -c %i {dir}/ns/net"));
    sd.sh_ok(&format!("systemctl kill -s KILL {pod}-infra.service"));
    sd.sh_ok(&format!("for i in $(seq 100); do systemctl is-active -q {pod}-infra.service || break; sleep 0.05; done"));
    // Left behind: the directory and its ns mounts (the pinned namespace lives on).
    assert!(sd
        .sh_ok("cat /proc/self/mountinfo")
        .contains(&format!("{dir}/ns/net")));
    sd.sh_ok(&format!(
        "systemctl reset-failed {pod}-infra.service; systemctl start {pod}-infra.service"
    ));
    let new_ns = sd.sh_ok(&format!("stat -L -c %i {dir}/ns/net"));
    assert_ne!(old_ns, new_ns, "a fresh namespace is pinned");
    let mounts = sd.sh_ok("cat /proc/self/mountinfo");
    assert_eq!(
        mounts.matches(&format!("{dir}/ns/net")).count(),
        1,
        "stale mount not detached:\n{mounts}"
    );
    sd.sh_ok(&format!("systemctl stop {pod}-infra.service"));
    assert!(!sd.path(&dir).exists());
    assert!(!sd
        .sh_ok("cat /proc/self/mountinfo")
        .contains("/run/podc/pods/"));
    Ok(())
}
