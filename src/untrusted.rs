//! Checks of an image config's strings before the planner puts them into a
//! unit. Image authors are not trusted (design §7): a string the renderer
//! could only write by changing it, or that the host would read as
//! something else, is an error that names the image and the field, never a
//! silent change.
//!
//! Per field (names as in the OCI image config):
//! * `Entrypoint`, `Cmd`: argv elements. Everything but NUL reaches the
//!   process exactly (control characters are C-escaped for systemd), so
//!   only NUL is refused; no process argument can carry it.
//! * `Env` values: the same; systemd passes control characters in values
//!   on. (Names are filtered by the planner.)
//! * `WorkingDir`: an absolute path without control characters, as the OCI
//!   runtime spec requires of `cwd`.
//! * `User`: `user[:group]` without control characters (names are resolved
//!   in the image, numbers are used as they are).
//! * `StopSignal`: a signal systemd's `KillSignal=` reads (a number, or a
//!   name with or without `SIG`, `RTMIN+n`, `RTMAX-n`); systemd would
//!   ignore anything else and send SIGTERM.
//!
//! Labels and the creation date never reach a unit.

use crate::plan::ImageConfig;

/// Signal names systemd 252 knows (`signal_from_string`), without `SIG`.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// How many real-time signals Linux has beyond `SIGRTMIN` (glibc: 34..=64).
const RT_SIGNALS: u32 = 30;

/// At most this many characters of a hostile value are quoted in a message.
const SHOWN: usize = 60;

/// `s` for a message: Rust-escaped (no control character reaches the
/// terminal) and cut short.
pub fn shown(s: &str) -> String {
    let cut: String = s.chars().take(SHOWN).collect();
    let more = if cut.len() < s.len() { "..." } else { "" };
    format!("{cut:?}{more}")
}

/// Whether systemd's `KillSignal=` reads `s` as a signal.
pub fn signal_ok(s: &str) -> bool {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n));
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    let rt = |base: &str, sign: char| match name.strip_prefix(base) {
        Some("") => true,
        Some(off) => off
            .strip_prefix(sign)
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n <= RT_SIGNALS),
        None => false,
    };
    SIGNALS.contains(&name) || rt("RTMIN", '+') || rt("RTMAX", '-')
}

fn nul(field: &str, v: &str) -> Option<String> {
    v.contains('\0').then(|| {
        format!(
            "{field} {} contains a NUL byte, which no process argument or environment variable can carry",
            shown(v)
        )
    })
}

fn control(field: &str, v: &str) -> Option<String> {
    v.contains(|c: char| c.is_control())
        .then(|| format!("{field} {} contains a control character", shown(v)))
}

/// What is wrong with `img`'s strings, one message per problem (each names
/// the field; the caller names the image).
pub fn problems(img: &ImageConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (field, list) in [("Entrypoint", &img.entrypoint), ("Cmd", &img.cmd)] {
        for (i, a) in list.iter().enumerate() {
            out.extend(nul(&format!("{field}[{i}]"), a));
        }
    }
    for (k, v) in &img.env {
        out.extend(nul(&format!("Env value of {}", shown(k)), v));
    }
    if let Some(w) = img.working_dir.as_deref().filter(|w| !w.is_empty()) {
        match control("WorkingDir", w) {
            Some(e) => out.push(e),
            None if !w.starts_with('/') => {
                out.push(format!("WorkingDir {} is not an absolute path", shown(w)))
            }
            None => {}
        }
    }
    if let Some(u) = img.user.as_deref() {
        out.extend(control("User", u));
    }
    if let Some(s) = img.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        if !signal_ok(s) {
            out.push(format!(
                "StopSignal {} is not a signal systemd knows (a number, or a name such as SIGTERM, SIGRTMIN+3)",
                shown(s)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_systemd_reads() {
        for ok in [
            "SIGTERM",
            "TERM",
            "SIGQUIT",
            "9",
            "64",
            "SIGRTMIN",
            "SIGRTMIN+3",
            "RTMAX-30",
        ] {
            assert!(signal_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "0",
            "65",
            "sigterm",
            "SIG",
            "SIGTERM\n",
            " SIGTERM",
            "SIGRTMIN+",
            "SIGRTMIN+31",
            "SIGRTMIN-1",
            "+9",
            "SIGKILL;",
        ] {
            assert!(!signal_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn each_field_is_checked() {
        let img = ImageConfig {
            entrypoint: vec!["/ok".into(), "a\0".into()],
            cmd: vec!["tab\tand\nnewline are fine".into(), "\0".into()],
            env: vec![("A".into(), "x\ty".into()), ("B".into(), "\0".into())],
            working_dir: Some("/w\n".into()),
            user: Some("1000\x1b[2J".into()),
            stop_signal: Some("SIGTERM\nExecStartPre=/x".into()),
            ..Default::default()
        };
        let p = problems(&img);
        let has = |s: &str| p.iter().any(|m| m.starts_with(s));
        assert!(has("Entrypoint[1] \"a\\0\" contains a NUL"), "{p:#?}");
        assert!(has("Cmd[1] "), "{p:#?}");
        assert!(has("Env value of \"B\" "), "{p:#?}");
        assert!(has("WorkingDir \"/w\\n\" contains a control"), "{p:#?}");
        assert!(has("User "), "{p:#?}");
        assert!(has("StopSignal "), "{p:#?}");
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(p.iter().all(|m| !m.contains(char::is_control)));
        let rel = ImageConfig {
            working_dir: Some("app".into()),
            ..Default::default()
        };
        assert_eq!(
            problems(&rel),
            ["WorkingDir \"app\" is not an absolute path"]
        );
        assert_eq!(shown(&"x".repeat(100)), format!("{:?}...", "x".repeat(60)));
    }
}
