//! Checks of the test harness itself: the namespaced systemd boots, leaves
//! the host alone, runs concurrently, and has a system bus.
mod support;

use support::systemd::Systemd;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn boots_and_runs_a_unit_without_touching_host_tmp() -> Result {
    // A file in the host's /tmp must survive systemd's boot-time tmpfiles run.
    let marker = std::env::temp_dir().join(format!("podc-host-marker-{}", std::process::id()));
    std::fs::write(&marker, "x")?;
    let Some(sd) = Systemd::boot()? else {
        let _ = std::fs::remove_file(&marker);
        return Ok(());
    };
    sd.write_unit(
        "hello.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    )?;
    sd.reload();
    sd.sh_ok("systemctl start hello.service");
    assert_eq!(
        sd.sh_ok("systemctl is-active hello.service").trim(),
        "active"
    );
    // The unit file lives only in the namespace's tmpfs.
    assert!(!std::path::Path::new("/etc/systemd/system/hello.service").exists());
    // Own UTS namespace: a hostname set inside does not leak out.
    let host_name = nix::unistd::gethostname()?;
    sd.sh_ok("hostname podc-inner-name");
    assert_eq!(sd.sh_ok("hostname").trim(), "podc-inner-name");
    assert_eq!(nix::unistd::gethostname()?, host_name);
    drop(sd);
    assert!(marker.exists(), "host /tmp was emptied");
    std::fs::remove_file(&marker)?;
    Ok(())
}

#[test]
fn two_instances_run_the_same_unit_name_concurrently() -> Result {
    let Some(a) = Systemd::boot()? else {
        return Ok(());
    };
    let Some(b) = Systemd::boot()? else {
        return Ok(());
    };
    for sd in [&a, &b] {
        sd.sh_ok("systemd-run --unit=same.service sleep 300");
    }
    // Each instance keeps its unit in its own cgroup subtree.
    let cg_a = a.sh_ok("systemctl show -P ControlGroup same.service");
    let cg_b = b.sh_ok("systemctl show -P ControlGroup same.service");
    assert_ne!(cg_a, cg_b);
    assert!(cg_a.starts_with(&format!("/{}/", a.name())), "{cg_a}");
    let name_a = a.name().to_string();
    drop(a);
    assert_eq!(b.sh_ok("systemctl is-active same.service").trim(), "active");
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/systemd")
            .join(&name_a)
            .exists(),
        "cgroups of a dropped instance are removed"
    );
    Ok(())
}

#[test]
fn system_bus_and_private_socket_are_there() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    assert_eq!(sd.sh_ok("systemctl is-active dbus.socket").trim(), "active");
    // dbus.service is socket-activated: the first client starts it.
    sd.sh_ok("busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.DBus.Peer Ping");
    assert_eq!(
        sd.sh_ok("systemctl is-active dbus.service").trim(),
        "active"
    );
    assert!(sd.path("/run/systemd/private").exists());
    Ok(())
}
