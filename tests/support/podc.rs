//! `podc` itself inside a namespaced systemd, run as a user would run it:
//! the binary and the static `podc-pause` are copied to a libexec dir under
//! the namespace's `/run` (the host's /tmp, where the cargo target dir may
//! live, is hidden inside), and every command runs through `nsenter`, so
//! podc uses its defaults: `/etc/systemd/system`, `/var/lib/podc`,
//! `/run/podc` and the system bus, all private to the namespace.
#![allow(dead_code)]

use super::helper::static_podc_pause;
use super::systemd::Systemd;
use std::process::Output;

/// Where the tests install podc's binaries inside the namespace.
pub const LIBEXEC: &str = "/run/podc-lib";
/// Template overrides (see [`Podc::boot`]).
pub const TEMPLATES: &str = "/run/podc-test-templates";

/// The compile flags every apply/diff in these tests uses.
pub const TARGET_FLAGS: [&str; 4] = ["--libexec-dir", LIBEXEC, "--templates", TEMPLATES];

/// The built-in container template, the base of tests' overrides
/// (`tests/apply_hooks.rs`); the other tests install it unchanged.
pub fn container_template() -> String {
    include_str!("../../templates/container.service").to_string()
}

pub struct Podc {
    pub sd: Systemd,
}

impl Podc {
    /// Boot a systemd with podc installed, or `None` (after printing why)
    /// when this machine cannot.
    pub fn boot() -> std::io::Result<Option<Podc>> {
        let Some(sd) = Systemd::boot()? else {
            return Ok(None);
        };
        sd.copy_in(env!("CARGO_BIN_EXE_podc"), &format!("{LIBEXEC}/podc"))?;
        sd.copy_in(static_podc_pause(), &format!("{LIBEXEC}/podc-pause"))?;
        sd.write_file(
            &format!("{TEMPLATES}/container.service"),
            container_template().as_bytes(),
        )?;
        // The image the tests' pods name, in the store, so apply's
        // imagePullPolicy (IfNotPresent for a tagged image) needs no
        // registry. Containers still run on the busybox roots the tests
        // provision ([`Podc::rootfs`]).
        sd.busybox_rootfs("/run/podc-test-image/root");
        sd.sh_ok(&format!(
            "tar -C /run/podc-test-image/root -cf /run/podc-test-image/busybox.tar . && \
             {LIBEXEC}/podc image import /run/podc-test-image/busybox.tar --name busybox:1.36"
        ));
        Ok(Some(Podc { sd }))
    }

    /// Run `podc ARGS...` inside.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut argv = vec![format!("{LIBEXEC}/podc")];
        argv.extend(args.iter().map(|s| s.to_string()));
        self.sd.exec(argv)
    }

    /// `podc apply -f FILE TARGET_FLAGS... EXTRA...`
    pub fn apply(&self, file: &str, extra: &[&str]) -> Output {
        let mut a = vec!["apply", "-f", file];
        a.extend(TARGET_FLAGS);
        a.extend(extra);
        self.run(&a)
    }

    /// Like [`Podc::apply`], panicking with the output unless it exits 0;
    /// returns stdout.
    pub fn apply_ok(&self, file: &str, extra: &[&str]) -> String {
        let out = self.apply(file, extra);
        assert!(out.status.success(), "apply failed: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "podc {args:?} failed: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Write a manifest inside the namespace.
    pub fn manifest(&self, path: &str, yaml: &str) {
        self.sd
            .write_file(path, yaml.as_bytes())
            .expect("write manifest");
    }

    /// Busybox root filesystems for the containers of pod `default/<pod>`,
    /// where `podc rootfs mount` finds a provisioned root.
    pub fn rootfs(&self, pod: &str, containers: &[&str]) {
        for c in containers {
            self.sd.busybox_rootfs(&format!(
                "/var/lib/podc/pods/default_{pod}/containers/{c}/rootfs"
            ));
        }
    }

    /// `systemctl show -P PROP UNIT`.
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.sd
            .sh_ok(&format!("systemctl show -P {prop} {unit}"))
            .trim()
            .to_string()
    }

    /// InvocationID of each unit.
    pub fn invocations(&self, units: &[String]) -> Vec<String> {
        units.iter().map(|u| self.prop(u, "InvocationID")).collect()
    }

    /// How many daemon-reloads systemd has logged.
    pub fn reloads(&self) -> usize {
        self.sd
            .sh("journalctl --no-pager -o cat _PID=1")
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"Reloading"))
            .count()
    }
}

pub fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A pod manifest with app containers given as (name, shell script).
pub fn pod_yaml(name: &str, extra_spec: &str, containers: &[(&str, &str)]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 3\n{extra_spec}  containers:\n"
    );
    for (c, script) in containers {
        y.push_str(&format!(
            "  - name: {c}\n    image: busybox:1.36\n    command: [\"sh\", \"-c\", {}]\n",
            serde_json::to_string(script).unwrap()
        ));
    }
    y
}
