//! The `podc` binary as a user runs it, through a small builder in the
//! style of just's tests: `Test::new().args(..).status(1).stderr_has(..)`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Test {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    status: i32,
    stdout_has: Vec<String>,
    stderr_has: Vec<String>,
    dir: PathBuf,
}

struct Output {
    stdout: String,
    stderr: String,
}

impl Test {
    fn new() -> Test {
        let dir = std::env::temp_dir().join(format!(
            "podc-cli-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&dir).unwrap();
        Test {
            args: Vec::new(),
            stdin: None,
            status: 0,
            stdout_has: Vec::new(),
            stderr_has: Vec::new(),
            dir,
        }
    }
    fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }
    fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }
    fn file(self, name: &str, text: &str) -> Self {
        let p = self.dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
        self
    }
    fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.as_bytes().to_vec());
        self
    }
    fn status(mut self, s: i32) -> Self {
        self.status = s;
        self
    }
    fn stdout_has(mut self, s: &str) -> Self {
        self.stdout_has.push(s.into());
        self
    }
    fn stderr_has(mut self, s: &str) -> Self {
        self.stderr_has.push(s.into());
        self
    }
    fn run(self) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_podc"))
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input = self.stdin.clone().unwrap_or_default();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        let o = Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_eq!(
            out.status.code(),
            Some(self.status),
            "podc {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            o.stdout,
            o.stderr
        );
        for s in &self.stdout_has {
            assert!(o.stdout.contains(s), "stdout lacks {s:?}:\n{}", o.stdout);
        }
        for s in &self.stderr_has {
            assert!(o.stderr.contains(s), "stderr lacks {s:?}:\n{}", o.stderr);
        }
        o
    }
}

fn examples() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .display()
        .to_string()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox:1.36\n    command: [\"sleep\", \"60\"]\n";

/// Every file under `dir`, relative path → content.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((
                    p.strip_prefix(base).unwrap().display().to_string(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn build_examples_writes_units_and_inventory() {
    let t = Test::new().args(&["build", "-o", "out"]).arg(examples());
    let dir = t.dir.clone();
    t.stdout_has("pod default/web: 5 units").run();
    let inv: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("out/inventory.json")).unwrap()).unwrap();
    let pods = inv["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 10);
    for pod in pods {
        for u in pod["units"].as_array().unwrap() {
            let text = fs::read(dir.join("out/units").join(u["name"].as_str().unwrap())).unwrap();
            use sha2::Digest;
            let want = format!("sha256:{:x}", sha2::Sha256::digest(&text));
            assert_eq!(u["hash"], want.as_str());
        }
    }
}

#[test]
fn invalid_input_leaves_the_previous_build_untouched() {
    let t = Test::new().file("pods/web.yaml", POD);
    let dir = t.dir.clone();
    t.args(&["build", "-o", "out", "pods"]).run();
    let before = snapshot(&dir.join("out"));
    assert!(before
        .iter()
        .any(|(p, _)| p == "units/podc_default_web_app.service"));
    let t2 = Test {
        dir: dir.clone(),
        ..Test::new()
    }
    .file(
        "pods/web.yaml",
        &POD.replace(
            "image: busybox:1.36",
            "image: busybox:1.36\n    comand: [x]",
        ),
    )
    .file("pods/other.yaml", &POD.replace("name: web", "name: other"));
    t2.args(&["build", "-o", "out", "pods"])
        .status(1)
        .stderr_has("unknown field \"comand\", did you mean \"command\"?")
        .run();
    assert_eq!(snapshot(&dir.join("out")), before);
    // No temporary directories left behind either.
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rebuild_replaces_the_whole_output() {
    let t = Test::new()
        .file("a.yaml", POD)
        .file("b.yaml", &POD.replace("name: web", "name: gone"));
    let dir = t.dir.clone();
    t.args(&["build", "-o", "out", "a.yaml", "b.yaml"]).run();
    assert!(dir.join("out/units/podc_default_gone.target").exists());
    Test {
        dir: dir.clone(),
        ..Test::new()
    }
    .args(&["build", "-o", "out", "a.yaml"])
    .run();
    assert!(!dir.join("out/units/podc_default_gone.target").exists());
    assert!(dir.join("out/units/podc_default_web.target").exists());
}

#[test]
fn refuses_to_replace_a_directory_that_is_not_a_build() {
    let t = Test::new()
        .file("a.yaml", POD)
        .file("precious/notes.txt", "keep me");
    let dir = t.dir.clone();
    t.args(&["build", "-o", "precious", "a.yaml"])
        .status(1)
        .stderr_has("not a podc build directory")
        .run();
    assert_eq!(
        fs::read_to_string(dir.join("precious/notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn validate_json_diagnostics() {
    let o = Test::new()
        .file("p.yaml", &POD.replace("name: app", "name: App_1"))
        .args(&["validate", "-o", "json", "p.yaml"])
        .status(1)
        .run();
    let d: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(d[0]["file"], "p.yaml");
    assert_eq!(d[0]["line"], 7);
    assert_eq!(d[0]["column"], 11);
    assert_eq!(d[0]["path"], "spec.containers[0].name");
    assert_eq!(d[0]["severity"], "error");
}

#[test]
fn validate_text_shows_a_snippet() {
    Test::new()
        .file(
            "p.yaml",
            &POD.replace(
                "image: busybox:1.36",
                "image: busybox:1.36\n    comand: [x]",
            ),
        )
        .args(&["validate", "p.yaml"])
        .status(1)
        .stderr_has("p.yaml:9:5: error: spec.containers[0].comand: unknown field")
        .stderr_has("9 |     comand: [x]\n  |     ^")
        .run();
}

#[test]
fn reads_stdin() {
    Test::new().args(&["validate", "-"]).stdin(POD).run();
    Test::new()
        .args(&["validate", "-"])
        .stdin("apiVersion: v1\nkind: Deployment\nmetadata: {name: x}\n")
        .status(1)
        .stderr_has("<stdin>:2:7: error: kind: Deployment is not supported; podc runs Pods")
        .run();
}

#[test]
fn directories_are_searched_for_yaml_and_json_only() {
    Test::new()
        .file("d/a.yaml", POD)
        .file("d/sub/b.yml", &POD.replace("name: web", "name: b"))
        .file("d/sub/c.json", r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c"},"spec":{"containers":[{"name":"x","image":"busybox:1","command":["true"]}]}}"#)
        .file("d/README.md", "not yaml: [")
        .args(&["build", "-o", "out", "d"])
        .stdout_has("pod default/web")
        .stdout_has("pod default/b")
        .stdout_has("pod default/c")
        .run();
}

#[test]
fn usage_errors_exit_2() {
    Test::new().args(&["build"]).status(2).run();
    Test::new()
        .args(&["build", "missing.yaml"])
        .status(2)
        .stderr_has("missing.yaml")
        .run();
    Test::new().args(&["frobnicate"]).status(2).run();
}

#[test]
fn binary_garbage_is_an_error_not_a_crash() {
    let t = Test::new();
    fs::write(
        t.dir.join("bin.yaml"),
        [0xff, 0xfe, 0x00, 0x01, b'\n', 0x80],
    )
    .unwrap();
    t.args(&["validate", "bin.yaml"])
        .status(1)
        .stderr_has("not valid UTF-8")
        .run();
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let o = Test::new().args(&["schema"]).run();
    let committed =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/pod.schema.json"))
            .unwrap();
    assert_eq!(o.stdout, committed);
}

#[test]
fn secrets_stay_out_of_units_and_in_root_only_files() {
    let t = Test::new()
        .args(&["build", "-o", "out"])
        .arg(format!("{}/config-and-secret.yaml", examples()));
    let dir = t.dir.clone();
    t.run();
    let secret = b"s3cr3t-passw0rd";
    let mut found_env = false;
    for (path, content) in snapshot(&dir.join("out")) {
        let meta = fs::metadata(dir.join("out").join(&path)).unwrap();
        let holds = content.windows(secret.len()).any(|w| w == secret);
        if path.starts_with("units/") || path == "inventory.json" {
            assert!(!holds, "secret in {path}");
        }
        if holds {
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{path} is readable by others"
            );
            found_env |= path.ends_with("env/app.env");
        }
    }
    assert!(found_env, "the secret env file was not written");
    let data = dir.join("out/pods/default_app/data");
    assert_eq!(
        fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn templates_can_be_overridden() {
    let t = Test::new().file("a.yaml", POD).file(
        "tpl/pod.target",
        "# site template\n[Unit]\nDescription=custom {{ pod.name }}\n",
    );
    let dir = t.dir.clone();
    t.args(&["build", "-o", "out", "--templates", "tpl", "a.yaml"])
        .run();
    let text = fs::read_to_string(dir.join("out/units/podc_default_web.target")).unwrap();
    assert_eq!(text, "# site template\n[Unit]\nDescription=custom web\n");
}

#[test]
fn pods_for_other_hosts_are_skipped_with_a_reason() {
    let pod = POD.replace("spec:\n", "spec:\n  nodeSelector:\n    disk: ssd\n");
    let t = Test::new().file("a.yaml", &pod);
    let dir = t.dir.clone();
    t.args(&["build", "-o", "out", "--node-name", "edge-1", "a.yaml"])
        .stderr_has(
            "skipped pod default/web (a.yaml): nodeSelector disk=ssd: this host has no label disk",
        )
        .run();
    assert!(!dir.join("out/units/podc_default_web.target").exists());
    Test::new()
        .file("a.yaml", &pod)
        .args(&["build", "-o", "out", "--node-label", "disk=ssd", "a.yaml"])
        .stdout_has("pod default/web: 4 units")
        .run();
}

#[test]
fn newer_systemd_gets_native_back_off_and_the_same_joiner() {
    // 254+ expresses Kubernetes' crash-loop back-off; the container is
    // still set up by the joiner (systemd's own sandboxing costs O(pods)
    // per start, README "The joiner").
    let t = Test::new().file("a.yaml", &POD.replace("[\"sleep\"", "[\"/bin/sleep\""));
    let dir = t.dir.clone();
    t.args(&["build", "-o", "out", "--systemd-version", "258", "a.yaml"])
        .run();
    let text = fs::read_to_string(dir.join("out/units/podc_default_web_app.service")).unwrap();
    assert!(text.contains("RestartSteps=5\n"), "{text}");
    assert!(text.contains("RestartMaxDelaySec=300s\n"), "{text}");
    assert!(
        text.contains("ExecStart=\"/usr/lib/podc/podc-pause\" \"join\" \"--rootfs\""),
        "{text}"
    );
    for gone in [
        "RootDirectory=",
        "ProtectHostname=",
        "PrivatePIDs=",
        "IPCNamespacePath=",
    ] {
        assert!(!text.contains(gone), "{gone}: {text}");
    }
}

#[test]
fn sub_paths_are_bound_through_pins_the_volume_setup_makes() {
    let pod = POD.replace(
        "spec:\n",
        "spec:\n  volumes:\n  - name: data\n    emptyDir: {}\n",
    )
        + "    volumeMounts:\n    - name: data\n      mountPath: /logs\n      subPath: app/logs\n";
    let t = Test::new().file("a.yaml", &pod);
    let dir = t.dir.clone();
    t.args(&["build", "-o", "out", "a.yaml"]).run();
    let unit = fs::read_to_string(dir.join("out/units/podc_default_web_app.service")).unwrap();
    assert!(
        unit.contains("\"--bind\" \"/run/podc/volumes/default_web/.subpath/app-0\" \"/logs\""),
        "{unit}"
    );
    assert!(
        !unit.contains("app/logs"),
        "the unit must not bind volume/subPath: {unit}"
    );
    let spec: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.join("out/pods/default_web/data/volumes.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        spec["volumes"][0]["subPaths"],
        serde_json::json!([{"path": "app/logs", "pin": "/run/podc/volumes/default_web/.subpath/app-0"}])
    );
}

/// A reader that goes away ends podc quietly: killed by SIGPIPE like any
/// Unix filter, never a "Broken pipe" panic with a backtrace.
#[test]
fn a_closed_stdout_ends_podc_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["schema"][..], &["validate", "examples", "-o", "json"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_podc"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(13),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}
