//! Every argv element and environment value podc writes reaches the
//! process byte for byte, through the real systemd: the unit is rendered by
//! podc's own template filters, started on the namespaced systemd 252, and
//! the process dumps its argv (`/proc/self/cmdline` semantics, NUL-separated)
//! and environment for comparison.
mod support;

use support::systemd::Systemd;

const NASTY: &[&str] = &[
    "plain",
    "",
    "two words",
    "  leading and trailing  ",
    "double \" quote",
    "single ' quote",
    "back\\slash",
    "trailing backslash \\",
    "\\",
    "$HOME",
    "${HOME}",
    "$$",
    "$(VAR)",
    "100%",
    "%n %i %% %",
    "semi;colon",
    ";",
    "new\nline",
    "tab\there",
    "cr\rhere",
    "bell\x07",
    "non-ASCII: grüße, 日本語, emoji 🚀",
    "-leading-dash",
    "@at",
    "+plus",
    "!bang",
    ":colon",
    "'\"'\"'",
    "ends with newline\n",
];

#[test]
fn argv_and_environment_survive_systemd_byte_for_byte() -> Result<(), Box<dyn std::error::Error>> {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    let mut env = podc::render::environment(None)?;
    env.add_template(
        "t",
        "[Service]\nType=oneshot\nExecStart={{ argv | exec }}\n{% for e in envs %}Environment={{ e | env }}\n{% endfor %}",
    )?;
    let mut argv: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        "printf '%s\\0' \"$@\" > /run/podc-argv; env -0 > /run/podc-env".into(),
        "sh".into(),
    ];
    argv.extend(NASTY.iter().map(|s| s.to_string()));
    let envs: Vec<(String, String)> = NASTY
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("PODC_T{i}"), v.to_string()))
        .collect();
    let unit = env
        .get_template("t")?
        .render(minijinja::context! { argv => argv, envs => envs })?;
    sd.write_unit("escape.service", &unit)?;
    sd.reload();
    let out = sd.sh("systemctl start escape.service");
    assert!(
        out.status.success(),
        "{unit}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = std::fs::read(sd.path("/run/podc-argv"))?;
    let want: Vec<u8> = NASTY
        .iter()
        .flat_map(|s| s.bytes().chain(std::iter::once(0)))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "argv differs; unit was:\n{unit}"
    );

    let dumped = std::fs::read(sd.path("/run/podc-env"))?;
    let vars: Vec<&[u8]> = dumped.split(|b| *b == 0).collect();
    for (k, v) in &envs {
        let entry = format!("{k}={v}");
        assert!(
            vars.contains(&entry.as_bytes()),
            "{entry:?} missing from the environment; unit was:\n{unit}"
        );
    }
    Ok(())
}
