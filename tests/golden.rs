//! Golden tests: every example pod compiles to the reviewed unit files in
//! `tests/golden/<example>/`, for a fixed target (systemd 252, node `edge-1`).
//!
//! After an intended change, regenerate with `PODC_BLESS=1 cargo test --test
//! golden` and review the diff like code: these files are what users run.

use podc::load::Source;
use podc::pipeline::{compile, Compiled};
use podc::plan::{Cgroup, NoImages, Target};
use podc::render;
use std::fs;
use std::path::{Path, PathBuf};

fn target(version: u32) -> Target {
    let mut t = Target::new(version, "edge-1");
    t.node_labels
        .insert("kubernetes.io/arch".into(), "amd64".into());
    t
}

fn compile_file(path: &Path, version: u32) -> Compiled {
    compile_for(path, &target(version))
}

fn compile_for(path: &Path, target: &Target) -> Compiled {
    let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
    let text = fs::read_to_string(path).unwrap();
    let env = render::environment(None).unwrap();
    match compile(&[Source { name, text }], target, &NoImages, &env) {
        Ok(c) => c,
        Err(d) => panic!("{} does not compile: {d:#?}", path.display()),
    }
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Compare (or with PODC_BLESS=1 write) the units of one compile.
fn check(c: &Compiled, dir: &Path) -> Vec<String> {
    let bless = std::env::var_os("PODC_BLESS").is_some();
    let mut failures = Vec::new();
    let mut expected: Vec<String> = Vec::new();
    if bless {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).unwrap();
    }
    for pod in &c.pods {
        for u in &pod.units {
            let path = dir.join(&u.name);
            expected.push(u.name.clone());
            if bless {
                fs::write(&path, &u.text).unwrap();
                continue;
            }
            match fs::read_to_string(&path) {
                Ok(want) if want == u.text => {}
                Ok(want) => failures.push(format!(
                    "{} differs:\n--- golden\n{want}\n+++ rendered\n{}",
                    path.display(),
                    u.text
                )),
                Err(_) => failures.push(format!("{} is missing (bless?)", path.display())),
            }
        }
    }
    // No stale golden files either.
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if !expected.contains(&n) {
                failures.push(format!("{}/{n} is not rendered any more", dir.display()));
            }
        }
    }
    failures
}

#[test]
fn examples_render_to_reviewed_units() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    let ex = examples();
    assert!(ex.len() >= 10, "expected the bundled examples");
    for path in &ex {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        failures.extend(check(&compile_file(path, 252), &root.join(&stem)));
    }
    // The same pods for a newer systemd use native directives.
    for stem in ["hooks", "shared-pid"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{stem}.yaml"));
        failures.extend(check(
            &compile_file(&path, 258),
            &root.join(format!("{stem}@258")),
        ));
    }
    // Resources on a cgroup v1 host: weights for Kubernetes' cpu.shares,
    // no MemoryMin= (v1 has no memory protection).
    let mut v1 = target(252);
    v1.cgroup = Cgroup::V1;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/resources.yaml");
    failures.extend(check(
        &compile_for(&path, &v1),
        &root.join("resources@cgroup1"),
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
