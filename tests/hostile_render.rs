//! Hostile image configs against the rendered units. Image authors are not
//! trusted (design §7): whatever an image's Cmd, Entrypoint, Env, WorkingDir,
//! User or StopSignal holds, the units podc writes carry exactly the
//! directives podc means, and every command line reaches systemd (parsed
//! here by a port of systemd 252's reader, `support/systemd_parser.rs`) as
//! exactly the argv podc means; or the build fails with an error that names
//! the image and the field.

#[path = "support/systemd_parser.rs"]
mod systemd_parser;

use podc::diagnostic::Diagnostic;
use podc::load::Source;
use podc::pipeline::{compile, Compiled};
use podc::plan::{ImageConfig, Images, Target};
use podc::render::RenderedUnit;
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
