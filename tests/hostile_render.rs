//! Hostile image configs against the rendered units. Image authors are not
//! trusted (design §7): whatever an image's Cmd, Entrypoint, Env, WorkingDir,
//! User or StopSignal holds, the units podc writes carry exactly the
//! directives podc means, and every command line reaches systemd (parsed
//! here by a port of systemd 252's reader, `support/systemd_parser.rs`) as
//! exactly the argv podc means; or the build fails with an error that names
//! the image and the field.

mod image_support;
#[path = "support/systemd_parser.rs"]
mod systemd_parser;

use podc::diagnostic::Diagnostic;
use podc::load::Source;
use podc::pipeline::{compile, Compiled};
use podc::plan::{ImageConfig, Images, Target};
use podc::render::RenderedUnit;
use proptest::prelude::*;
use systemd_parser::{parse_exec_words, parse_unit_file, Directive, Seg};

const IMAGE: &str = "registry.test/evil:1";

/// An image store that knows one image.
struct OneImage(ImageConfig);

impl Images for OneImage {
    fn config(&self, image: &str) -> Option<ImageConfig> {
        (image == IMAGE).then(|| self.0.clone())
    }
}

fn image(cmd: &[&str]) -> ImageConfig {
    ImageConfig {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        digest: Some(format!("sha256:{}", "a".repeat(64))),
        layers: vec!["/var/lib/podc/images/layers/a".into()],
        ..Default::default()
    }
}

/// A pod with one container of [`IMAGE`]; `extra` is YAML for the
/// container (indented by four spaces).
fn pod(extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: {IMAGE}\n{extra}"
    )
}

fn build(yaml: &str, img: ImageConfig) -> Result<Compiled, Vec<Diagnostic>> {
    let env = podc::render::environment(None).unwrap();
    let src = Source {
        name: "pod.yaml".into(),
        text: yaml.into(),
    };
    compile(&[src], &Target::new(252, "node1"), &OneImage(img), &env)
}

fn container_unit(c: &Compiled) -> &RenderedUnit {
    c.pods[0]
        .units
        .iter()
        .find(|u| u.name == "podc_default_p_c.service")
        .expect("the container unit")
}

/// The directives of a unit as systemd reads them.
fn directives(u: &RenderedUnit) -> Vec<Directive> {
    parse_unit_file(&u.text).unwrap_or_else(|e| panic!("{e}:\n{}", u.text))
}

fn keys(u: &RenderedUnit) -> Vec<(String, String)> {
    directives(u)
        .into_iter()
        .map(|d| (d.section, d.key))
        .collect()
}

/// The argv of the unit's `ExecStart=` as systemd runs it.
fn exec_start(u: &RenderedUnit) -> Vec<Vec<Seg>> {
    let d = directives(u);
    let line = d.iter().find(|d| d.key == "ExecStart").expect("ExecStart=");
    parse_exec_words(&line.value)
        .unwrap_or_else(|e| panic!("{e}: {:?}", line.value))
        .1
}

/// The container's own argv: what follows the joiner's `--`.
fn container_argv(u: &RenderedUnit) -> Vec<Vec<Seg>> {
    let argv = exec_start(u);
    let dd = vec![Seg::Text("--".into())];
    let at = argv.iter().position(|w| *w == dd).expect("--");
    argv[at + 1..].to_vec()
}

fn text(s: &str) -> Vec<Seg> {
    if s.is_empty() {
        Vec::new()
    } else {
        vec![Seg::Text(s.into())]
    }
}

/// The build failed with an error (not a warning) that names the image
/// and `field`; no diagnostic carries a control character (they go to a
/// terminal) or a dump of a template.
fn assert_clear_error(r: Result<Compiled, Vec<Diagnostic>>, field: &str) {
    let diags = match r {
        Ok(c) => panic!(
            "built, expected an error about {field}:\n{}",
            container_unit(&c).text
        ),
        Err(d) => d,
    };
    assert!(
        diags
            .iter()
            .any(|d| d.is_error() && d.message.contains(IMAGE) && d.message.contains(field)),
        "no error names {IMAGE} and {field}: {diags:#?}"
    );
    for d in &diags {
        let h = d.headline();
        assert!(!h.contains(char::is_control), "{h:?}");
        // A render error names the template; it dumps its context.
        assert!(!h.contains(" with template "), "{h}");
    }
}

/// The NUL-marker injection of the security report: secret references used
/// to be `\0NAME\0` inside argv strings, so an image Cmd holding NULs wrote
/// its own lines into the unit, here an `ExecStartPre=` that systemd runs
/// as root on the host before the container.
#[test]
fn nul_marker_in_cmd_cannot_write_a_directive() {
    let evil = "x\0A}\"\nExecStartPre=/bin/sh -c \"touch /pwned\"\nX-Y=\0";
    let r = build(&pod(""), image(&["/bin/sh", evil]));
    if let Ok(c) = &r {
        let u = container_unit(c);
        assert!(
            !keys(u).iter().any(|(_, k)| k == "ExecStartPre"),
            "injected:\n{}",
            u.text
        );
    }
    assert_clear_error(r, "Cmd[1]");
}

/// A secret that the manifest references in `args` is a variable systemd
/// expands from the EnvironmentFile; the same spelling in the image's
/// ENTRYPOINT is text and reaches the process as written.
#[test]
fn only_podc_makes_variables() {
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{PW: hunter2}}\n---\n{}",
        pod("    args: [\"--pw=$(PW)\", \"$$(PW)\"]\n    env: [{name: PW, valueFrom: {secretKeyRef: {name: s, key: PW}}}]\n")
    );
    let mut img = image(&["ignored"]);
    img.entrypoint = ["/bin/app", "${PW}", "$(PW)", "%n", "\\"]
        .map(String::from)
        .to_vec();
    let c = build(&yaml, img).unwrap_or_else(|d| panic!("{d:#?}"));
    let u = container_unit(&c);
    assert!(!u.text.contains("hunter2"), "{}", u.text);
    assert_eq!(
        container_argv(u),
        [
            text("/bin/app"),
            text("${PW}"),
            text("$(PW)"),
            text("%n"),
            text("\\"),
            vec![Seg::Text("--pw=".into()), Seg::Var("PW".into())],
            text("$(PW)"),
        ],
        "{}",
        u.text
    );
}

/// The same marker in the other image strings that end up in a command line.
#[test]
fn nul_markers_elsewhere_are_refused_by_field() {
    let evil = "\0A}\"\nExecStartPre=/bin/evil\n\0";
    let mut img = image(&["/bin/true"]);
    img.entrypoint = vec![evil.into()];
    assert_clear_error(build(&pod(""), img), "Entrypoint[0]");
    let mut img = image(&["/bin/true"]);
    img.working_dir = Some(format!("/w{evil}"));
    assert_clear_error(build(&pod(""), img), "WorkingDir");
    // An image Env value reaches argv through the manifest's $(VAR).
    let mut img = image(&["/bin/true"]);
    img.env = vec![("E".into(), evil.into())];
    assert_clear_error(
        build(&pod("    args: [\"$(E)\"]\n"), img),
        "Env value of \"E\"",
    );
}

/// `%`, `$`, quotes, backslashes and control characters in an image's Cmd
/// reach the process exactly.
#[test]
fn specifiers_variables_and_escapes_in_cmd_stay_text() {
    let cmd = [
        "/bin/sh",
        "-c",
        "echo %n %i %% $HOME ${HOME} $$ $(X)",
        "$HOME",
        "%",
        "a\\",
        "\\",
        "q\"'",
        "new\nline",
        "tab\t",
        "\x1b[2J",
        ";",
        "\\;",
        "-",
        "",
    ];
    let c = build(&pod(""), image(&cmd)).unwrap_or_else(|d| panic!("{d:#?}"));
    let u = container_unit(&c);
    assert_eq!(container_argv(u), cmd.map(text).to_vec(), "{}", u.text);
}

/// A WorkingDir systemd or the joiner would read differently is an error,
/// not a changed path.
#[test]
fn working_dir_must_be_a_plain_absolute_path() {
    for (wd, why) in [("/srv\nExecStartPre=/x", "control"), ("srv", "absolute")] {
        let mut img = image(&["/bin/true"]);
        img.working_dir = Some(wd.into());
        let r = build(&pod(""), img);
        if let Err(d) = &r {
            assert!(d.iter().any(|d| d.message.contains(why)), "{d:#?}");
        }
        assert_clear_error(r, "WorkingDir");
    }
    let mut img = image(&["/bin/true"]);
    img.working_dir = Some("/a b/%n/$X/\"q\"".into());
    let c = build(&pod(""), img).unwrap_or_else(|d| panic!("{d:#?}"));
    let argv = exec_start(container_unit(&c));
    let cwd = argv
        .iter()
        .position(|w| *w == text("--cwd"))
        .expect("--cwd");
    assert_eq!(argv[cwd + 1], text("/a b/%n/$X/\"q\""));
}

/// Env values keep tabs and newlines exactly (systemd passes them on); a
/// NUL is an error naming the variable.
#[test]
fn env_values_are_exact_or_refused() {
    let mut img = image(&["/bin/true"]);
    let value = "a\tb\nc \"d\" %n $X \\";
    img.env = vec![("V".into(), value.into())];
    let c = build(&pod(""), img).unwrap_or_else(|d| panic!("{d:#?}"));
    let u = container_unit(&c);
    let env: Vec<(String, String)> = directives(u)
        .iter()
        .filter(|d| d.key == "Environment")
        .flat_map(|d| systemd_parser::parse_environ(&d.value).unwrap())
        .collect();
    assert!(env.contains(&("V".into(), value.into())), "{}", u.text);
    let mut img = image(&["/bin/true"]);
    img.env = vec![("V".into(), "a\0b".into())];
    assert_clear_error(build(&pod(""), img), "Env value of \"V\"");
}

/// KillSignal= must be a signal systemd reads: otherwise systemd ignores
/// the line and sends SIGTERM. A line break cannot reach the unit either.
#[test]
fn stop_signal_is_a_signal_or_an_error() {
    for bad in [
        "SIGTERM\nExecStartPre=/bin/evil",
        "SIGNOPE",
        "sigquit",
        "%n",
    ] {
        let mut img = image(&["/bin/true"]);
        img.stop_signal = Some(bad.into());
        assert_clear_error(build(&pod(""), img), "StopSignal");
    }
    let mut img = image(&["/bin/true"]);
    img.stop_signal = Some("SIGRTMIN+3".into());
    let c = build(&pod(""), img).unwrap_or_else(|d| panic!("{d:#?}"));
    let d = directives(container_unit(&c));
    let kill: Vec<&str> = d
        .iter()
        .filter(|d| d.key == "KillSignal")
        .map(|d| d.value.as_str())
        .collect();
    assert_eq!(kill, ["SIGRTMIN+3"]);
}

/// A User with terminal escapes is refused, and the messages that quote it
/// carry no control character.
#[test]
fn user_with_control_characters_is_an_error() {
    let mut img = image(&["/bin/true"]);
    img.user = Some("\x1b]0;owned\x07nobody\n".into());
    assert_clear_error(build(&pod(""), img), "User");
}

/// Hooks still join the container through `${MAINPID}`, a variable.
#[test]
fn hook_commands_reference_mainpid() {
    let c = build(
        &pod("    lifecycle: {postStart: {exec: {command: [/bin/hook, \"${MAINPID}\"]}}}\n"),
        image(&["/bin/true"]),
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    let d = directives(container_unit(&c));
    let line = d.iter().find(|d| d.key == "ExecStartPost").unwrap();
    let argv = parse_exec_words(&line.value).unwrap().1;
    let mnt = vec![
        Seg::Text("/proc/".into()),
        Seg::Var("MAINPID".into()),
        Seg::Text("/ns/mnt".into()),
    ];
    assert!(argv.contains(&mnt), "{argv:?}");
    assert_eq!(
        argv[argv.len() - 2..],
        [text("/bin/hook"), text("${MAINPID}")]
    );
}

/// An empty StopSignal is unset (as `image::resolve_process` reads it), not
/// an empty `KillSignal=`.
#[test]
fn empty_stop_signal_means_the_default() {
    let mut img = image(&["/bin/true"]);
    img.stop_signal = Some(String::new());
    let c = build(&pod(""), img).unwrap_or_else(|d| panic!("{d:#?}"));
    let u = container_unit(&c);
    assert!(
        !keys(u).iter().any(|(_, k)| k == "KillSignal"),
        "{}",
        u.text
    );
}

/// Sanity of the parser port's whole-file reader and variable expansion,
/// so a broken port cannot make the tests above pass vacuously.
#[test]
fn parser_port_reads_units_as_systemd_does() {
    let d = |s: &str| {
        parse_unit_file(s).map(|v| {
            v.into_iter()
                .map(|d| format!("{}.{}={}", d.section, d.key, d.value))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        d("[A]\nK=v\\\n  more\n# c\n ;c\n[B]\n X = y \n").unwrap(),
        ["A.K=v   more", "B.X=y"]
    );
    // A comment line inside a continuation is skipped.
    assert_eq!(d("[A]\nK=a\\\n#c\nb").unwrap(), ["A.K=a b"]);
    // CR and NUL end lines too: a second directive.
    assert_eq!(
        d("[A]\nK=v\rExecStartPre=/x\0L=w").unwrap(),
        ["A.K=v", "A.ExecStartPre=/x", "A.L=w"]
    );
    assert_eq!(d("[A]\nK=a\\\\\nL=b").unwrap(), ["A.K=a\\\\", "A.L=b"]);
    for bad in ["K=v", "[A]\nno equals", "[A", "[A]\n=v"] {
        assert!(d(bad).is_err(), "{bad:?}");
    }
    let seg = systemd_parser::replace_env_segments;
    assert_eq!(
        seg(b"a${X}b$$c").unwrap(),
        [
            Seg::Text("a".into()),
            Seg::Var("X".into()),
            Seg::Text("b$c".into())
        ]
    );
    assert_eq!(seg(b"$${X}").unwrap(), [Seg::Text("${X}".into())]);
    for bad in [&b"${X"[..], b"$X", b"${X:-y}", b"$"] {
        assert!(seg(bad).is_err(), "{bad:?}");
    }
}

/// Imports an image with `config` (the OCI `config` object) into the store
/// at `root` as `reference`.
fn import_image(root: &std::path::Path, reference: &str, config: serde_json::Value) {
    use image_support::*;
    let mut c = busybox_config();
    c["config"] = config;
    let img = TestImage::new(
        vec![layer(
            &[dir("bin", 0o755)],
            podc::image::unpack::Compression::None,
        )],
        c,
    );
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("img.tar");
    write_oci_archive(&img, &archive, Some(reference));
    run_ok(podc(root).args(["image", "import"]).arg(&archive));
}

/// `podc build` against a real store: an imported image's hostile Cmd
/// reaches ExecStart= as exactly its argv with no directive added, and a
/// NUL in it fails the build naming the image and the field.
#[test]
fn podc_build_with_a_hostile_imported_image() {
    if image_support::skip_unless_root("importing images") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let cmd = [
        "/bin/sh",
        "-c",
        "echo 100% $HOME ${HOME}\"\nExecStartPre=/bin/touch /pwned\n[Service]\nUser=root",
        "\\",
    ];
    import_image(
        &root,
        "example.test/hostile:1",
        serde_json::json!({"Cmd": cmd, "Env": ["A=tab\there"], "WorkingDir": "/srv/%n"}),
    );
    import_image(
        &root,
        "example.test/nul:1",
        serde_json::json!({"Cmd": ["/bin/sh", "x\0A}\"\nExecStartPre=/bin/touch /pwned\n\0"]}),
    );
    let build = |image: &str| {
        let pod = t.path().join("pod.yaml");
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: {image}\n");
        std::fs::write(&pod, yaml).unwrap();
        let out = t.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let o = image_support::podc(&root)
            .args(["build", "--systemd-version", "252", "-o"])
            .arg(&out)
            .arg(&pod)
            .output()
            .unwrap();
        (o, out.join("units/podc_default_p_c.service"))
    };

    let (o, unit) = build("example.test/hostile:1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let u = RenderedUnit {
        name: "c".into(),
        text: std::fs::read_to_string(unit).unwrap(),
        hash: String::new(),
    };
    assert!(
        !keys(&u)
            .iter()
            .any(|(_, k)| k == "ExecStartPre" || k == "User"),
        "{}",
        u.text
    );
    assert_eq!(container_argv(&u), cmd.map(text), "{}", u.text);
    let argv = exec_start(&u);
    let cwd = argv.iter().position(|w| *w == text("--cwd")).unwrap();
    assert_eq!(argv[cwd + 1], text("/srv/%n"));

    let (o, unit) = build("example.test/nul:1");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !unit.exists(), "{stderr}");
    assert!(
        stderr.contains("image example.test/nul:1: Cmd[1] "),
        "{stderr}"
    );
    assert!(
        !stderr.contains(|c: char| c.is_control() && c != '\n'),
        "{stderr:?}"
    );
}

// ---------------------------------------------------------------------
// Property: arbitrary image configs and manifest strings.
// ---------------------------------------------------------------------

/// The secret's value; no generated string contains `Z`.
const SECRET: &str = "ZQXJ";

/// Pieces that stress every layer: systemd's unquoting, specifiers and
/// variables, Kubernetes' `$(VAR)` (naming variables that exist), the old
/// NUL marker, line breaks and directives.
const TOKENS: &[&str] = &[
    "a",
    " ",
    "\t",
    "\n",
    "\r",
    "\u{1b}",
    "\u{7}",
    "%",
    "%n",
    "%%",
    "$",
    "$$",
    "${",
    "}",
    "$(",
    ")",
    "${PATH}",
    "${MAINPID}",
    "$(S)",
    "$(I0)",
    "$(M0)",
    "$$(S)",
    "\"",
    "'",
    "\\",
    "\\n",
    ";",
    "=",
    "#",
    "[Service]",
    "ExecStartPre=/bin/evil",
    "é",
    "🦀",
    "\0",
    "\0MAINPID\0",
    "\0S\0",
    "-",
    "@",
    "/",
];

fn from_tokens(nul: bool) -> impl Strategy<Value = String> {
    let tokens: Vec<&'static str> = TOKENS
        .iter()
        .copied()
        .filter(|t| nul || !t.contains(['\0', '\r', '\u{7}']))
        .collect();
    prop::collection::vec(prop::sample::select(tokens), 0..6).prop_map(|v| v.concat())
}

/// Any string an image config may hold.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        from_tokens(true),
        any::<String>().prop_map(|s| s.replace('Z', "z"))
    ]
}

/// A manifest string (the manifest is trusted, but its values are escaped
/// all the same); no NUL, which validation refuses.
fn manifest_string() -> impl Strategy<Value = String> {
    from_tokens(false)
}

#[derive(Clone, Debug)]
struct Case {
    img: ImageConfig,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    /// `M0`, `M1`, ... in order, after the secret `S`.
    env: Vec<String>,
    hook: Option<Vec<String>>,
}

fn case() -> impl Strategy<Value = Case> {
    let strings = |n| prop::collection::vec(hostile(), 0..n);
    let img = (
        strings(3),
        strings(3),
        prop::collection::vec(hostile(), 0..3),
        prop::option::of(prop_oneof![
            hostile(),
            hostile().prop_map(|s| format!("/{s}"))
        ]),
        prop::option::of(prop_oneof![
            Just("1000".to_string()),
            Just("7:8".to_string()),
            hostile()
        ]),
        prop::option::of(prop_oneof![Just("SIGQUIT".to_string()), hostile()]),
    )
        .prop_map(
            |(entrypoint, cmd, env, working_dir, user, stop_signal)| ImageConfig {
                entrypoint,
                cmd,
                env: env
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("I{i}"), v))
                    .collect(),
                working_dir,
                user,
                stop_signal,
                ..image(&[])
            },
        );
    let list = |n| prop::option::of(prop::collection::vec(manifest_string(), 0..n));
    (
        img,
        list(3),
        list(3),
        prop::collection::vec(manifest_string(), 0..3),
        prop::option::of(prop::collection::vec(manifest_string(), 1..3)),
    )
        .prop_map(|(img, command, args, env, hook)| Case {
            img,
            command,
            args,
            env,
            hook,
        })
}

/// The manifest of a case, as JSON (which is YAML).
fn manifest(c: &Case) -> String {
    let mut env = vec![serde_json::json!(
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "S"}}}
    )];
    for (i, v) in c.env.iter().enumerate() {
        env.push(serde_json::json!({"name": format!("M{i}"), "value": v}));
    }
    let mut ctr = serde_json::json!({"name": "c", "image": IMAGE, "env": env});
    if let Some(v) = &c.command {
        ctr["command"] = serde_json::json!(v);
    }
    if let Some(v) = &c.args {
        ctr["args"] = serde_json::json!(v);
    }
    if let Some(v) = &c.hook {
        ctr["lifecycle"] = serde_json::json!({"postStart": {"exec": {"command": v}}});
    }
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s"}, "stringData": {"S": SECRET}});
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"}, "spec": {"containers": [ctr]}});
    format!("{secret}\n---\n{pod}\n")
}

/// The same case with an image of the same shape whose strings are benign.
fn benign(c: &Case) -> Case {
    let mut b = c.clone();
    let words = |v: &[String]| v.iter().map(|_| "w".to_string()).collect();
    b.img.entrypoint = words(&c.img.entrypoint);
    b.img.cmd = words(&c.img.cmd);
    for e in &mut b.img.env {
        e.1 = "v".into();
    }
    b.img.working_dir = c.img.working_dir.as_ref().map(|w| {
        if w.is_empty() {
            String::new()
        } else {
            "/w".into()
        }
    });
    // A user that is not `uid[:gid]` fails the hostile build (no store to
    // resolve names): the benign one builds.
    let numeric = |u: &String| u.is_empty() || u.split(':').all(|p| p.parse::<u32>().is_ok());
    b.img.user = c
        .img
        .user
        .clone()
        .map(|u| if numeric(&u) { u } else { "1000".into() });
    b.img.stop_signal = c.img.stop_signal.as_ref().map(|s| {
        if s.is_empty() {
            String::new()
        } else {
            "SIGTERM".into()
        }
    });
    b
}

/// The environment the container gets as (name, value, secret), by
/// Kubernetes' rules: the image's, PATH, then the manifest's in order, each
/// manifest value `$(VAR)`-expanded against what comes before it; a value
/// that used the secret is secret.
fn oracle_env(c: &Case) -> Vec<(String, String, bool)> {
    let mut env: Vec<(String, String, bool)> = c
        .img
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), false))
        .collect();
    env.push(("PATH".into(), podc::plan::DEFAULT_PATH.into(), false));
    env.push(("S".into(), SECRET.into(), true));
    for (i, raw) in c.env.iter().enumerate() {
        let used = std::cell::Cell::new(false);
        let lookup = |n: &str| {
            env.iter().find(|e| e.0 == n).map(|e| {
                used.set(used.get() | e.2);
                e.1.clone()
            })
        };
        let v = podc::expand::expand(raw, &lookup);
        env.push((format!("M{i}"), v, used.get()));
    }
    env
}

/// One argv element as systemd must hand it over: `$(VAR)` expanded, a
/// secret as a variable.
fn oracle_word(raw: &str, env: &[(String, String, bool)]) -> Vec<Seg> {
    let lookup = |n: &str| {
        env.iter().find(|e| e.0 == n).map(|e| {
            if e.2 {
                Seg::Var(e.0.clone())
            } else {
                Seg::Text(e.1.clone())
            }
        })
    };
    let mut out: Vec<Seg> = Vec::new();
    for p in podc::expand::expand_pieces(raw, &lookup) {
        let seg = match p {
            podc::expand::Piece::Text(t) => Seg::Text(t.to_string()),
            podc::expand::Piece::Value(s) => s,
        };
        match (out.last_mut(), seg) {
            (_, Seg::Text(t)) if t.is_empty() => {}
            (Some(Seg::Text(prev)), Seg::Text(t)) => prev.push_str(&t),
            (_, seg) => out.push(seg),
        }
    }
    out
}

/// The container's argv by Kubernetes' command/args rules.
fn oracle_argv(c: &Case) -> Vec<Vec<Seg>> {
    let env = oracle_env(c);
    let given = |v: &Option<Vec<String>>| {
        v.as_ref()
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().map(|a| oracle_word(a, &env)).collect::<Vec<_>>())
    };
    let lit = |v: &[String]| v.iter().map(|a| text(a)).collect::<Vec<_>>();
    match (given(&c.command), given(&c.args)) {
        (Some(cmd), args) => [cmd, args.unwrap_or_default()].concat(),
        (None, args) => [lit(&c.img.entrypoint), args.unwrap_or(lit(&c.img.cmd))].concat(),
    }
}

/// The plain (non-secret) environment as the unit's `Environment=` lines
/// set it.
fn unit_env(u: &RenderedUnit) -> Vec<(String, String)> {
    directives(u)
        .iter()
        .filter(|d| d.key == "Environment")
        .flat_map(|d| systemd_parser::parse_environ(&d.value).expect("Environment="))
        .collect()
}

/// `argv` of `key` with the joiner's `--cwd` value replaced by `cwd`.
fn with_cwd(mut argv: Vec<Vec<Seg>>, cwd: &Option<String>) -> Vec<Vec<Seg>> {
    if let Some(at) = argv.iter().position(|w| *w == text("--cwd")) {
        argv[at + 1] = text(cwd.as_deref().unwrap_or_default());
    }
    argv
}

fn exec_line(u: &RenderedUnit, key: &str) -> Option<Vec<Vec<Seg>>> {
    let d = directives(u);
    let line = d.iter().find(|d| d.key == key)?;
    Some(
        parse_exec_words(&line.value)
            .unwrap_or_else(|e| panic!("{key}: {e}: {:?}", line.value))
            .1,
    )
}

/// The whole property for one case.
fn check_case(c: &Case) -> Result<(), TestCaseError> {
    let b = benign(c);
    let good = build(&manifest(&b), b.img.clone());
    let got = build(&manifest(c), c.img.clone());
    let (good, got) = match (good, got) {
        (Ok(good), Ok(got)) => (good, got),
        (Ok(_), Err(d)) => {
            // Only the image differs: the error must be about it.
            assert_clear_error(Err(d), IMAGE);
            return Ok(());
        }
        (Err(_), Ok(got)) => {
            return Err(TestCaseError::fail(format!(
                "a hostile image built where the benign one did not:\n{}",
                container_unit(&got).text
            )))
        }
        (Err(_), Err(d)) => {
            for h in d.iter().map(Diagnostic::headline) {
                prop_assert!(!h.contains(char::is_control), "{h:?}");
            }
            return Ok(());
        }
    };
    // The same units with the same directives, in the same order.
    let names = |c: &Compiled| {
        c.pods[0]
            .units
            .iter()
            .map(|u| u.name.clone())
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(names(&good), names(&got));
    for (g, h) in good.pods[0].units.iter().zip(&got.pods[0].units) {
        prop_assert_eq!(keys(g), keys(h), "{}", h.text);
        prop_assert!(!h.text.contains(SECRET), "secret in {}", h.text);
    }
    // Every command line is exactly the intended argv.
    let (gu, hu) = (container_unit(&good), container_unit(&got));
    let want = oracle_argv(c);
    let good_argv = exec_line(gu, "ExecStart").unwrap();
    let joiner = good_argv.len() - oracle_argv(&b).len();
    let want_start = [
        with_cwd(good_argv[..joiner].to_vec(), &c.img.working_dir),
        want,
    ]
    .concat();
    prop_assert_eq!(
        exec_line(hu, "ExecStart").unwrap(),
        want_start,
        "{}",
        hu.text
    );
    if let Some(hook) = &c.hook {
        let env = oracle_env(c);
        let good_post = exec_line(gu, "ExecStartPost").unwrap();
        let prefix = with_cwd(
            good_post[..good_post.len() - hook.len()].to_vec(),
            &c.img.working_dir,
        );
        let want: Vec<Vec<Seg>> = hook.iter().map(|a| oracle_word(a, &env)).collect();
        prop_assert_eq!(
            exec_line(hu, "ExecStartPost").unwrap(),
            [prefix, want].concat()
        );
    }
    // The plain environment, exactly; the secret and what used it are not
    // in the unit.
    let want_env: Vec<(String, String)> = oracle_env(c)
        .into_iter()
        .filter(|e| !e.2)
        .map(|e| (e.0, e.1))
        .collect();
    prop_assert_eq!(unit_env(hu), want_env);
    let kill: Vec<String> = directives(hu)
        .into_iter()
        .filter(|d| d.key == "KillSignal")
        .map(|d| d.value)
        .collect();
    let want_kill: Vec<String> = c
        .img
        .stop_signal
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    prop_assert_eq!(kill, want_kill);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the image and the manifest hold, the units have exactly
    /// the directives and command lines podc means, or the build fails
    /// with a clear error about the image.
    #[test]
    fn hostile_configs_render_exactly_or_fail_clearly(c in case()) {
        check_case(&c)?;
    }
}

/// runAsNonRoot against an image whose numeric `User` spells uid 0 another
/// way ("00", "+0", "0000:0"): the kubelet parses the number and refuses
/// the container (CreateContainerConfigError), and so does podc's plan,
/// instead of comparing text with "0" and leaving the refusal to the
/// joiner at start.
#[test]
fn run_as_non_root_reads_the_image_user_as_a_number() {
    let y = pod("").replace(
        "spec:\n",
        "spec:\n  securityContext: {runAsNonRoot: true}\n",
    );
    for user in ["00", "+0", "0000:0"] {
        let mut img = image(&["/bin/true"]);
        img.user = Some(user.into());
        img.user_ids = Some(Ok(user.into()));
        let c = build(&y, img).unwrap_or_else(|d| panic!("{user}: {d:#?}"));
        let u = container_unit(&c);
        let d = directives(u);
        let err = d.iter().find(|d| d.key == "X-PodcConfigError");
        assert!(
            err.is_some_and(|e| e.value.contains("image will run as root")),
            "{user}:\n{}",
            u.text
        );
        assert!(
            !exec_start(u).contains(&text("--user")),
            "{user}:\n{}",
            u.text
        );
    }
    // Another uid written with a leading zero or sign is that uid.
    let mut img = image(&["/bin/true"]);
    img.user = Some("+01000".into());
    img.user_ids = Some(Ok("+01000".into()));
    let c = build(&y, img).unwrap_or_else(|d| panic!("{d:#?}"));
    let argv = exec_start(container_unit(&c));
    let at = argv.iter().position(|w| *w == text("--user")).unwrap();
    assert_eq!(argv[at + 1], text("1000:0"));
}
