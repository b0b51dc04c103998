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
    assert!(
        r.is_err(),
        "a NUL cannot reach the process: the build fails"
    );
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
