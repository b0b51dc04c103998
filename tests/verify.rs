//! Every generated unit passes `systemd-analyze verify` on this host's
//! systemd. verify exits 0 even for unknown keys and bad values, so the test
//! reads its output: any line is a failure.
//!
//! The units are verified in a scratch root (`--root`) that holds the host's
//! system units, the units under test, and stand-ins for podc's helper
//! binaries at the paths the units name (verify checks that every
//! `ExecStart=` binary exists).

use podc::load::Source;
use podc::pipeline::compile;
use podc::plan::{NoImages, Target};
use podc::render;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `systemd-analyze` runs here. With `PODC_REQUIRE_SYSTEM_TESTS=1`
/// (`.ci/run`) its absence fails the test instead of skipping it.
fn have_systemd_analyze() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("PODC_REQUIRE_SYSTEM_TESTS").is_some_and(|v| v != "0") {
        panic!("PODC_REQUIRE_SYSTEM_TESTS is set, but systemd-analyze is not installed");
    }
    ok
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if ty.is_dir() {
            copy_dir(&e.path(), &dst);
        } else if ty.is_symlink() {
            let _ = std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A scratch root for `systemd-analyze verify --root`.
fn scratch_root(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("podc-verify-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    copy_dir(
        Path::new("/usr/lib/systemd/system"),
        &root.join("usr/lib/systemd/system"),
    );
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    for stub in ["usr/lib/podc/podc", "usr/lib/podc/podc-pause"] {
        let p = root.join(stub);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

/// Verify `units` (name, text); returns verify's complaints.
fn verify(name: &str, units: &[(String, String)]) -> Vec<String> {
    let root = scratch_root(name);
    let dir = root.join("etc/systemd/system");
    for (n, text) in units {
        fs::write(dir.join(n), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .arg(format!("--root={}", root.display()))
        .args(units.iter().map(|(n, _)| dir.join(n)))
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&root);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn example_units(templates: Option<&Path>) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut sources = Vec::new();
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths {
        sources.push(Source {
            name: p.display().to_string(),
            text: fs::read_to_string(&p).unwrap(),
        });
    }
    let env = render::environment(templates).unwrap();
    let c = compile(&sources, &Target::new(252, "edge-1"), &NoImages, &env).unwrap();
    c.pods
        .iter()
        .flat_map(|p| p.units.iter().map(|u| (u.name.clone(), u.text.clone())))
        .collect()
}

#[test]
fn every_example_unit_passes_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let units = example_units(None);
    assert!(
        units.len() > 40,
        "expected all example units, got {}",
        units.len()
    );
    let complaints = verify("examples", &units);
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify:\n{}",
        complaints.join("\n")
    );
}

/// The check above can fail: a unit with an unknown key and a bad value is
/// reported, although verify exits 0.
#[test]
fn verify_output_catches_bad_directives() {
    if !have_systemd_analyze() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let bad = "[Unit]\nDescription=x\n[Service]\nExecStart=/usr/lib/podc/podc\nFrobnicate=yes\nMemoryMax=lots\n";
    let complaints = verify("bad", &[("bad.service".into(), bad.into())]);
    assert!(
        complaints.iter().any(|l| l.contains("Frobnicate")),
        "{complaints:?}"
    );
    assert!(
        complaints.iter().any(|l| l.contains("bad.service:6")),
        "{complaints:?}"
    );
}
