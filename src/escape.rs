//! Escaping for systemd unit files (systemd 252 semantics).
//!
//! Everything podc writes into a unit comes from a user's manifest and must
//! reach the process (or systemd's own setting) byte for byte. systemd parses
//! each directive differently, so there is one function per kind of value:
//!
//! | function | directives | systemd applies |
//! |---|---|---|
//! | [`exec_command`], [`exec_arg`], [`exec_line`] | `ExecStart=`, `ExecStartPre=`, `ExecStartPost=`, `ExecStop=`, ... | unquoting, C escapes, `%` specifiers, `$`/`${}` at exec time |
//! | [`env_assignment`] | `Environment=` | unquoting, C escapes, `%` specifiers (no `$`) |
//! | [`path_list_entry`] | `BindPaths=`, `BindReadOnlyPaths=` | unquoting, `\` before a separator, `%` |
//! | [`path_value`] | `RootDirectory=`, `WorkingDirectory=`, `NetworkNamespacePath=`, `IPCNamespacePath=`, `PIDFile=` | `%` specifiers only (the value is raw) |
//! | [`text_value`] | `Description=`, `#` comments | `%` specifiers only (the value is raw) |
//! | [`unit_name_escape`], [`unit_name_path_escape`] | unit file names | the `systemd-escape` encoding |
//!
//! The plain functions never fail, so templates can call them; each has a
//! `try_` twin ([`try_exec_arg`], [`try_exec_line`], [`try_env_assignment`],
//! [`try_path_list_entry`]) that returns `Err` where a value cannot be
//! represented (a NUL byte, a relative path where systemd requires an
//! absolute one, an environment variable name systemd refuses) instead of
//! writing something systemd would read differently or drop with only a
//! warning. Errors say what would be accepted.
//!
//! Facts of systemd 252's unit file reader that every function has to
//! respect:
//! * a line ends at `\n` (or `\r`, or NUL), so no value may contain a raw
//!   line break — it would end the directive and start a new one;
//! * a line whose last character is an unescaped `\` is joined with the next
//!   line (continuation);
//! * leading and trailing whitespace of a value is stripped;
//! * a line is at most 1 MiB ([`UNIT_LINE_MAX`]), or the unit fails to load.

use std::fmt::Write as _;

/// Longest line systemd 252 reads from a unit file (`LONG_LINE_MAX`); a
/// longer line makes the whole unit fail to load. Renderers should check
/// `directive.len() + 1 + value.len()` against it.
pub const UNIT_LINE_MAX: usize = 1024 * 1024;

/// Longest path systemd accepts (`PATH_MAX` including the NUL).
const PATH_MAX: usize = 4096;
/// Longest path component systemd accepts (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Appends `c` in the C-escaped, double-quoted form that systemd's
/// `extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)` turns back into
/// `c`, and escapes `%` (specifiers) and, if asked, `$` (exec-time
/// environment expansion).
fn push_quoted_char(
    out: &mut String,
    c: char,
    double_dollar: bool,
    lossy: bool,
) -> Result<(), String> {
    match c {
        '\0' if lossy => out.push(char::REPLACEMENT_CHARACTER),
        '\0' => return Err(NUL_ERROR.to_string()),
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0b' => out.push_str("\\v"),
        '\x0c' => out.push_str("\\f"),
        '%' => out.push_str("%%"),
        '$' if double_dollar => out.push_str("$$"),
        c if c.is_ascii_control() => {
            // Remaining C0 controls and DEL: `\xNN` yields that raw byte.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        // Everything else, including `'`, spaces, `;` and non-ASCII UTF-8,
        // is literal inside double quotes.
        c => out.push(c),
    }
    Ok(())
}

const NUL_ERROR: &str = "contains a NUL byte, which no systemd setting (and no process argument or environment variable) can carry";

fn quoted(s: &str, double_dollar: bool, lossy: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_quoted_char(&mut out, c, double_dollar, lossy)?;
    }
    out.push('"');
    Ok(out)
}

/// One argument of an `Exec*=` command line, so that the process receives
/// exactly `s` as that argv element.
///
/// Always double-quoted (an empty argument becomes `""`), `\` and `"`
/// escaped, control characters as C escapes, `%` as `%%` (systemd expands
/// specifiers in every word) and `$` as `$$` (systemd expands `${VAR}` in
/// any word and splits a word that starts with `$VAR`, at exec time).
/// Non-ASCII text is written as UTF-8.
///
/// The `$$` escaping assumes the command has no `:` prefix: with `:`
/// systemd skips environment expansion and `$$` would stay `$$`.
///
/// A NUL byte cannot be passed to a process at all; this infallible form
/// (convenient in templates) writes U+FFFD in its place. Use
/// [`try_exec_arg`] to get an error instead.
pub fn exec_arg(s: &str) -> String {
    quoted(s, true, true).unwrap_or_default()
}

/// [`exec_arg`] that fails on a NUL byte instead of replacing it.
pub fn try_exec_arg(s: &str) -> Result<String, String> {
    quoted(s, true, false)
}

/// Arguments of an `Exec*=` command line, each escaped with [`exec_arg`]
/// and separated by single spaces. This is for arguments only (what follows
/// the executable); use [`exec_command`] for a whole command line, because
/// systemd reads the first word differently. NUL bytes are replaced as in
/// [`exec_arg`]; [`try_exec_line`] reports them instead.
pub fn exec_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| exec_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`exec_line`] that fails on a NUL byte instead of replacing it.
pub fn try_exec_line(argv: &[String]) -> Result<String, String> {
    Ok(argv
        .iter()
        .map(|a| try_exec_arg(a))
        .collect::<Result<Vec<_>, _>>()?
        .join(" "))
}

/// Checks that `cmd` can be the first word of an `Exec*=` line, where
/// systemd treats it as the executable path.
fn check_executable(cmd: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("executable {cmd:?} {why}"));
    if cmd.is_empty() {
        return bad("is empty; an absolute path or a plain file name is required");
    }
    if cmd == ";" {
        return bad("would be read by systemd as a command separator");
    }
    if let Some(c) = cmd.chars().next().filter(|c| "-@:+!".contains(*c)) {
        return bad(&format!(
            "starts with '{c}', which systemd reads as an Exec prefix; use an absolute path"
        ));
    }
    // systemd's string_is_safe(): no control characters, quotes or backslashes.
    if cmd
        .chars()
        .any(|c| c.is_ascii_control() || matches!(c, '"' | '\'' | '\\'))
    {
        return bad("contains a control character, a quote or a backslash, which systemd does not accept in an executable path");
    }
    if cmd.ends_with('/') {
        return bad("ends with '/', so it names a directory");
    }
    if cmd.starts_with('/') {
        check_path_lengths(cmd)?;
    } else if cmd.contains('/') || cmd == "." || cmd == ".." || cmd.len() > NAME_MAX {
        return bad(
            "must be an absolute path or a plain file name (searched in systemd's fixed PATH)",
        );
    }
    Ok(())
}

/// A whole `Exec*=` command line: `argv[0]` is the executable, the rest its
/// arguments; the process receives exactly `argv`.
///
/// systemd reads the first word as the executable path, after unquoting: a
/// leading `-`, `@`, `:`, `+` or `!` is taken as a prefix even inside
/// quotes, and the path may not contain control characters, quotes or
/// backslashes, so such an `argv[0]` is an error. The path itself is not
/// `$`-expanded while `argv[0]` is; when `argv[0]` contains `$` the line is
/// written in the `@path argv0 ...` form so both come out right.
pub fn exec_command(argv: &[String]) -> Result<String, String> {
    let Some((cmd, args)) = argv.split_first() else {
        return Err("empty command: at least the executable is required".to_string());
    };
    check_executable(cmd)?;
    let mut out = if cmd.contains('$') {
        // Path: specifiers only. argv[0]: specifiers and `$`.
        format!("\"@{}\" {}", cmd.replace('%', "%%"), try_exec_arg(cmd)?)
    } else {
        try_exec_arg(cmd)?
    };
    for a in args {
        out.push(' ');
        out.push_str(&try_exec_arg(a)?);
    }
    Ok(out)
}

/// Whether systemd 252 accepts `name` in `Environment=`: ASCII letters,
/// digits and `_`, not empty, not starting with a digit (`env_name_is_valid`).
pub fn systemd_env_name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(first) if !first.is_ascii_digit() => {
            b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        }
        _ => false,
    }
}

/// Variables systemd sets itself for the processes it spawns
/// (systemd.exec(5), "Environment Variables in Spawned Processes"), which
/// an `Environment=` line would override, and the dynamic loader's `LD_*`.
/// They steer the host-side helpers of a container unit: `${MAINPID}` in
/// a hook's command line names the namespaces the hook enters,
/// `$NOTIFY_SOCKET` is where the joiner reports the main process, and
/// `LD_PRELOAD` would load a library into any dynamically linked one. The
/// one list both the image filter and the manifest validation use.
const RESERVED_ENV: &[&str] = &[
    "MAINPID",
    "MANAGERPID",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "SERVICE_RESULT",
    "EXIT_CODE",
    "EXIT_STATUS",
    "PIDFILE",
    "RUNTIME_DIRECTORY",
    "STATE_DIRECTORY",
    "CACHE_DIRECTORY",
    "LOGS_DIRECTORY",
    "CONFIGURATION_DIRECTORY",
    "CREDENTIALS_DIRECTORY",
    "SYSTEMD_EXEC_PID",
    "LOG_NAMESPACE",
];
/// Name prefixes of the same kind: `WATCHDOG_USEC`/`_PID`,
/// `MONITOR_*` (OnFailure=/OnSuccess= units), `TRIGGER_*` (path and timer
/// activation), the dynamic loader's `LD_*`.
const RESERVED_ENV_PREFIXES: &[&str] = &["WATCHDOG_", "MONITOR_", "TRIGGER_", "LD_"];

/// Whether `name` is a variable systemd sets for a unit's processes or one
/// that steers a host-side helper (see [`RESERVED_ENV`]): an image's is
/// dropped, a manifest's is an error.
pub fn reserved_env_name(name: &str) -> bool {
    RESERVED_ENV.contains(&name) || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The value of one `Environment=` line that sets `name` to exactly
/// `value`: `"NAME=value"` double-quoted, with `\`, `"` and control
/// characters C-escaped and `%` as `%%`. `$` is left alone: `Environment=`
/// does no variable expansion (systemd.exec(5)), so `$HOME` stays `$HOME`.
/// Control characters in the value are allowed by systemd 252.
///
/// This infallible form (convenient in templates) cannot report what systemd
/// will refuse: check the name with [`systemd_env_name_ok`] first, or use
/// [`try_env_assignment`]. A NUL byte is written as U+FFFD.
pub fn env_assignment(name: &str, value: &str) -> String {
    render_env(name, value, true).unwrap_or_default()
}

/// [`env_assignment`] that fails when systemd cannot take the assignment: a
/// NUL byte, or a name outside systemd's `[A-Za-z_][A-Za-z0-9_]*`.
/// Kubernetes also allows `-` and `.` in names; systemd drops such an
/// assignment with only a warning, so the caller must pass those variables
/// another way (for example through the helper that starts the container).
pub fn try_env_assignment(name: &str, value: &str) -> Result<String, String> {
    if !systemd_env_name_ok(name) {
        return Err(format!(
            "environment variable name {name:?} cannot be set with systemd's Environment=, which accepts only ASCII letters, digits and '_', not starting with a digit"
        ));
    }
    render_env(name, value, false)
}

fn render_env(name: &str, value: &str, lossy: bool) -> Result<String, String> {
    let mut out = String::with_capacity(name.len() + value.len() + 3);
    out.push('"');
    // The name is escaped too, so even a name systemd will refuse stays one
    // word and cannot break the line.
    for c in name.chars() {
        push_quoted_char(&mut out, c, false, lossy)?;
    }
    out.push('=');
    for c in value.chars() {
        push_quoted_char(&mut out, c, false, lossy)?;
    }
    out.push('"');
    Ok(out)
}

/// A free-text value such as `Description=` or the text of a `#` comment.
///
/// These values are raw (no unquoting, no C escapes), so the text is made
/// safe rather than byte-exact: `%` becomes `%%`, every control character
/// (including newline, carriage return and tab) becomes a space so the line
/// cannot be split and nothing can be smuggled onto a new line, surrounding
/// whitespace is trimmed (systemd strips it anyway), and a trailing odd run
/// of backslashes gets one more `\` so the line is not continued.
pub fn text_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    let mut out = out.trim().to_string();
    let trailing = out.len() - out.trim_end_matches('\\').len();
    if trailing % 2 == 1 {
        out.push('\\');
    }
    out
}

fn check_path_lengths(p: &str) -> Result<(), String> {
    if p.len() >= PATH_MAX {
        return Err(format!(
            "path is {} bytes long; systemd accepts at most {} bytes",
            p.len(),
            PATH_MAX - 1
        ));
    }
    if let Some(c) = p.split('/').find(|c| c.len() > NAME_MAX) {
        return Err(format!(
            "path component {c:?} is {} bytes long; at most {NAME_MAX} bytes are allowed",
            c.len()
        ));
    }
    Ok(())
}

/// What systemd's `path_simplify_and_warn(PATH_CHECK_ABSOLUTE)` requires of
/// every path setting: absolute, no `..` component, sane lengths. podc
/// also refuses control characters: a line break cannot be written at all,
/// and the other control characters would have to appear raw in the unit.
fn check_absolute_path(p: &str) -> Result<(), String> {
    if p.contains('\0') {
        return Err(format!("path {p:?} contains a NUL byte"));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err(format!(
            "path {p:?} contains a control character; podc does not write control characters into path settings"
        ));
    }
    if !p.starts_with('/') {
        return Err(format!("path {p:?} must be absolute (start with '/')"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!(
            "path {p:?} must not contain a '..' component; systemd refuses non-normalized paths"
        ));
    }
    check_path_lengths(p)
}

/// The value of a single-path directive whose value systemd does not unquote
/// (`RootDirectory=`, `WorkingDirectory=`, `NetworkNamespacePath=`,
/// `IPCNamespacePath=`, `PIDFile=`): the path with `%` as `%%`.
///
/// Quotes, spaces and backslashes are literal in these settings, but three
/// things cannot be written: a path that is not absolute or has a `..`
/// component (systemd refuses it), trailing whitespace (stripped by the unit
/// file reader) and a trailing backslash (read as a line continuation).
pub fn path_value(p: &str) -> Result<String, String> {
    check_absolute_path(p)?;
    if p.ends_with([' ', '\t']) {
        return Err(format!(
            "path {p:?} ends with whitespace, which systemd strips from the setting"
        ));
    }
    if p.ends_with('\\') {
        return Err(format!(
            "path {p:?} ends with a backslash, which systemd reads as a line continuation"
        ));
    }
    Ok(p.replace('%', "%%"))
}

/// Quotes one path of a bind mount entry. Inside quotes `:` and whitespace
/// are literal; a backslash must be doubled (systemd unescapes only
/// separators and `\` there, with no C escapes); the quote character itself
/// cannot be escaped, so a path containing `"` is wrapped in `'...'`.
///
/// `lossy` skips the checks and replaces what cannot be written (control
/// characters, NUL, `"` when both quote kinds occur) with U+FFFD.
fn quote_bind_path(p: &str, lossy: bool) -> Result<String, String> {
    if !lossy {
        check_absolute_path(p)?;
    }
    let q = match (p.contains('"'), p.contains('\'')) {
        (false, _) => '"',
        (true, false) => '\'',
        (true, true) if lossy => '"',
        (true, true) => {
            return Err(format!(
                "path {p:?} contains both kinds of quote, which podc cannot write into a bind mount setting"
            ))
        }
    };
    let mut out = String::with_capacity(p.len() + 2);
    out.push(q);
    for c in p.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '%' => out.push_str("%%"),
            c if c == q || c.is_control() => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out.push(q);
    Ok(out)
}

/// One entry of `BindPaths=`/`BindReadOnlyPaths=`: `SRC[:DST]`, each path
/// quoted so colons, spaces and backslashes in it survive; `DST` defaults
/// to `SRC` in systemd. The mount is recursive (systemd's default `rbind`,
/// like Kubernetes' bind mounts).
///
/// systemd reads these lists without coalescing separators, so join entries
/// with exactly one space, or better, write one entry per directive line.
///
/// This infallible form (convenient in templates) does not check the paths:
/// systemd ignores an entry with a relative or `..` path (with only a
/// warning), and control characters are replaced by U+FFFD. Use
/// [`try_path_list_entry`] to get those as errors.
pub fn path_list_entry(src: &str, dst: Option<&str>) -> String {
    bind_entry(src, dst, false, true, true).unwrap_or_default()
}

/// [`path_list_entry`] that fails for what systemd would refuse or podc
/// cannot write: a relative path, a `..` component, a control character or
/// NUL, a path with both quote kinds, an over-long path.
pub fn try_path_list_entry(src: &str, dst: Option<&str>) -> Result<String, String> {
    bind_entry(src, dst, false, true, false)
}

/// [`try_path_list_entry`] with systemd's two options: `ignore_missing`
/// writes the `-` prefix (skip the mount when the source does not exist),
/// and `recursive: false` writes `:norbind` (which needs a destination, so
/// the source is repeated when `dst` is `None`).
pub fn try_path_list_entry_with(
    src: &str,
    dst: Option<&str>,
    ignore_missing: bool,
    recursive: bool,
) -> Result<String, String> {
    bind_entry(src, dst, ignore_missing, recursive, false)
}

fn bind_entry(
    src: &str,
    dst: Option<&str>,
    ignore_missing: bool,
    recursive: bool,
    lossy: bool,
) -> Result<String, String> {
    let mut out = String::new();
    let src_q = quote_bind_path(src, lossy)?;
    if ignore_missing {
        // The `-` is recognised after unquoting, so it can go inside the quotes.
        let (q, rest) = src_q.split_at(1);
        out.push_str(q);
        out.push('-');
        out.push_str(rest);
    } else {
        out.push_str(&src_q);
    }
    let dst = match (dst, recursive) {
        (Some(d), _) => Some(d),
        (None, false) => Some(src),
        (None, true) => None,
    };
    if let Some(d) = dst {
        out.push(':');
        out.push_str(&quote_bind_path(d, lossy)?);
    }
    if !recursive {
        out.push_str(":norbind");
    }
    Ok(out)
}

/// Characters `systemd-escape` leaves alone (its `VALID_CHARS` minus `-`
/// and `\`, which it always escapes).
fn unit_name_char_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.')
}

/// The exact `systemd-escape STRING` encoding (systemd's
/// `unit_name_escape`), for building unit names from pod and container
/// names: `/` becomes `-`, a leading `.` and every byte other than ASCII
/// letters, digits, `:`, `_` and `.` become `\xNN` (lowercase hex, one per
/// UTF-8 byte). The empty string stays empty, as with `systemd-escape ""`.
/// The result is reversible, so distinct inputs give distinct unit names.
pub fn unit_name_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        if b == b'/' {
            out.push('-');
        } else if (i == 0 && b == b'.') || !unit_name_char_ok(b) {
            let _ = write!(out, "\\x{b:02x}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The exact `systemd-escape --path PATH` encoding (`unit_name_path_escape`),
/// as used for mount and path unit names: the path is simplified (repeated
/// and trailing `/` and `.` components dropped), `/` alone becomes `-`,
/// and the rest is escaped without its leading `/`. Errors for what
/// systemd-escape cannot escape reversibly: a relative path, a `..`
/// component, a NUL byte.
pub fn unit_name_path_escape(p: &str) -> Result<String, String> {
    if p.contains('\0') {
        return Err(format!("path {p:?} contains a NUL byte"));
    }
    if !p.starts_with('/') {
        return Err(format!("path {p:?} must be absolute (start with '/')"));
    }
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!("path {p:?} must not contain a '..' component"));
    }
    if parts.is_empty() {
        return Ok("-".to_string());
    }
    Ok(unit_name_escape(&parts.join("/")))
}

/// The systemd 252 parser port the tests check against; shared with the
/// integration tests.
#[cfg(test)]
#[path = "../tests/support/systemd_parser.rs"]
mod systemd_parser;

#[cfg(test)]
mod tests {
    //! The tests parse podc's output with a port of the systemd 252 code that
    //! reads it (`extract_first_word`, `cunescape_one`, `config_parse_exec`,
    //! `config_parse_environ`, `config_parse_bind_paths`, the unit file line
    //! reader), and require the round trip to be the identity.

    use super::systemd_parser::*;
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Nasty strings for every round-trip test.
    fn nasty() -> Vec<String> {
        let mut v = strings(&[
            "",
            " ",
            "  ",
            "a b",
            " leading",
            "trailing ",
            "\"",
            "'",
            "\"'\"",
            "it's",
            "say \"hi\"",
            "\\",
            "\\\\",
            "a\\",
            "\\n",
            "\\x41",
            "\\;",
            "$",
            "$$",
            "$X",
            "${X}",
            "$(X)",
            "$$(X)",
            "a$b",
            "${X:-y}",
            "%",
            "%%",
            "%n",
            "%i",
            "100%",
            "%$",
            "$%",
            ";",
            "a;b",
            "; ls",
            "&&",
            "|",
            ">/dev/null",
            "\n",
            "a\nb",
            "line1\nExecStartPre=/bin/evil",
            "\r\n",
            "\t",
            "a\tb",
            "\x01\x02\x7f",
            "\x07\x08\x0b\x0c\x1b",
            "#comment",
            "[Service]",
            "=",
            "A=B",
            "é",
            "naïve café",
            "日本語",
            "🦀🚀",
            "\u{200b}\u{2028}\u{85}",
            "\u{feff}",
            "-",
            "-x",
            "@x",
            ":x",
            "+x",
            "!x",
            "!!x",
            "--flag=value with space",
            "/path/with space/and:colon",
        ]);
        v.push("x".repeat(5000));
        v
    }

    fn round_trip_exec(argv: &[String]) -> Result<(), String> {
        let line = format!("ExecStart={}", exec_command(argv)?);
        let (key, value) = parse_unit_line(&line)?;
        assert_eq!(key, "ExecStart");
        let (path, parsed) = parse_exec(&value).map_err(|e| format!("{e} in {line:?}"))?;
        if parsed != argv {
            return Err(format!("{line:?} parsed as {parsed:?}, want {argv:?}"));
        }
        if Some(&path) != argv.first() {
            return Err(format!("{line:?}: executable {path:?}"));
        }
        Ok(())
    }

    #[test]
    fn exec_round_trip_each_nasty_argument() {
        for s in nasty() {
            let argv = vec!["/bin/echo".to_string(), s.clone()];
            round_trip_exec(&argv).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        }
    }

    #[test]
    fn exec_round_trip_all_nasty_arguments_at_once() {
        let mut argv = vec!["/usr/bin/env".to_string()];
        argv.extend(nasty());
        round_trip_exec(&argv).unwrap_or_else(|e| panic!("{e}"));
        // And exec_line alone, behind a fixed executable.
        let args = nasty();
        let (_, parsed) = parse_exec(&format!("/bin/echo {}", exec_line(&args)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.get(1..), Some(args.as_slice()));
    }

    #[test]
    fn exec_arg_exact_forms() {
        let a = |s: &str| try_exec_arg(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a(""), "\"\"");
        assert_eq!(a("plain"), "\"plain\"");
        assert_eq!(a("a b"), "\"a b\"");
        assert_eq!(a("$HOME"), "\"$$HOME\"");
        assert_eq!(a("${X}"), "\"$${X}\"");
        assert_eq!(a("100%"), "\"100%%\"");
        assert_eq!(a("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(a("it's"), "\"it's\"");
        assert_eq!(a("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(a("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
        assert_eq!(a("\x07\x08\x0b\x0c"), "\"\\a\\b\\v\\f\"");
        assert_eq!(a("\x01\x1b\x7f"), "\"\\x01\\x1b\\x7f\"");
        assert_eq!(a("é🦀"), "\"é🦀\"");
        assert!(try_exec_arg("a\0b").is_err());
        assert_eq!(exec_arg("a\0b"), "\"a\u{fffd}b\"");
        assert!(try_exec_line(&strings(&["ok", "a\0"])).is_err());
        assert_eq!(exec_line(&[]), "");
        assert_eq!(try_exec_line(&[]).as_deref(), Ok(""));
        assert_eq!(exec_line(&strings(&["a", "", "b c"])), "\"a\" \"\" \"b c\"");
        assert_eq!(
            try_exec_line(&strings(&["a", "", "b c"])).as_deref(),
            Ok("\"a\" \"\" \"b c\"")
        );
    }

    #[test]
    fn exec_output_is_one_printable_line() {
        for s in nasty() {
            let line = exec_arg(&s);
            assert!(
                !line.chars().any(|c| c.is_ascii_control()),
                "{s:?} -> {line:?}"
            );
        }
    }

    #[test]
    fn exec_command_executable_rules() {
        let ok = |v: &[&str]| exec_command(&strings(v)).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(ok(&["/bin/echo", "hi"]), "\"/bin/echo\" \"hi\"");
        assert_eq!(ok(&["echo"]), "\"echo\"");
        assert_eq!(ok(&["/opt/my app/run"]), "\"/opt/my app/run\"");
        assert_eq!(ok(&["/opt/100%/run"]), "\"/opt/100%%/run\"");
        // `$` in the executable: path raw, argv[0] escaped, via `@`.
        assert_eq!(
            ok(&["/opt/$x/run", "a"]),
            "\"@/opt/$x/run\" \"/opt/$$x/run\" \"a\""
        );
        for bad in [
            &[][..],
            &[""],
            &[";"],
            &["-/bin/true"],
            &["@/bin/true"],
            &[":/bin/true"],
            &["+/bin/true"],
            &["!/bin/true"],
            &["bin/true"],
            &["./true"],
            &[".."],
            &["/bin/"],
            &["/bin/a\"b"],
            &["/bin/a'b"],
            &["/bin/a\\b"],
            &["/bin/a\nb"],
            &["/bin/a\tb"],
            &["/bin/\0"],
            &["/bin/true", "a\0"],
        ] {
            assert!(exec_command(&strings(bad)).is_err(), "{bad:?}");
        }
        assert!(exec_command(&strings(&[&format!("/{}", "a".repeat(256))])).is_err());
        assert!(exec_command(&strings(&[&"/a".repeat(2048)])).is_err());
    }

    #[test]
    fn exec_round_trip_with_dollar_and_percent_in_executable() {
        for cmd in ["/opt/$x/run", "/opt/${X}/run", "/opt/$$/%n/run", "/opt/x$"] {
            round_trip_exec(&strings(&[cmd, "$y", "%z"])).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        }
    }

    /// xorshift64: small, deterministic, no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % (n.max(1) as u64)) as usize
        }
        fn string(&mut self, max_len: usize) -> String {
            const SPECIAL: &[char] = &[
                ' ', '\t', '\n', '\r', '"', '\'', '\\', '$', '{', '}', '%', ';', ':', '=', '@',
                '-', '!', '+', '#', 'x', 'n', '0', 'é', '🦀', '\u{7f}', '\u{1}', '\u{85}',
            ];
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| match self.below(4) {
                    0 => char::from_u32(self.below(0x11_0000) as u32)
                        .filter(|c| *c != '\0')
                        .unwrap_or('?'),
                    1 => char::from(b' ' + self.below(95) as u8),
                    _ => SPECIAL
                        .get(self.below(SPECIAL.len()))
                        .copied()
                        .unwrap_or('x'),
                })
                .collect()
        }
    }

    #[test]
    fn exec_round_trip_random() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..3000 {
            let n = rng.below(5);
            let mut argv = vec!["/bin/prog".to_string()];
            argv.extend((0..n).map(|_| rng.string(12)));
            round_trip_exec(&argv).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn env_round_trip() {
        for v in nasty() {
            let line = format!(
                "Environment={}",
                try_env_assignment("NAME_1", &v).unwrap_or_default()
            );
            let (_, value) = parse_unit_line(&line).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            let parsed = parse_environ(&value).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(parsed, vec![("NAME_1".to_string(), v.clone())], "{line:?}");
        }
        let mut rng = Rng(0xfeed_f00d_dead_beef);
        for _ in 0..2000 {
            let v = rng.string(16);
            let value = try_env_assignment("_x", &v).unwrap_or_default();
            assert_eq!(
                parse_environ(&value),
                Ok(vec![("_x".to_string(), v.clone())]),
                "{value:?}"
            );
        }
    }

    #[test]
    fn env_exact_forms_and_errors() {
        assert_eq!(try_env_assignment("A", "").as_deref(), Ok("\"A=\""));
        assert_eq!(
            try_env_assignment("A", "$HOME %n").as_deref(),
            Ok("\"A=$HOME %%n\"")
        );
        assert_eq!(
            try_env_assignment("A", "a\"b\\c\n").as_deref(),
            Ok("\"A=a\\\"b\\\\c\\n\"")
        );
        for name in ["", "1A", "my-var", "my.var", "A B", "A=B", "é", "A\0"] {
            assert!(try_env_assignment(name, "x").is_err(), "{name:?}");
        }
        assert!(try_env_assignment("A", "x\0y").is_err());
        for name in ["A", "_", "a1", "_1", "ABC_def_9"] {
            assert!(try_env_assignment(name, "x").is_ok(), "{name:?}");
        }
    }

    #[test]
    fn text_values_cannot_escape_their_line() {
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("100% done", "100%% done"),
            ("%n", "%%n"),
            ("a\nExecStart=/bin/evil", "a ExecStart=/bin/evil"),
            ("a\r\nb", "a  b"),
            ("tab\there", "tab here"),
            ("  padded  ", "padded"),
            ("ends with \\", "ends with \\\\"),
            ("ends with \\\\", "ends with \\\\"),
            ("ends with \\\\\\", "ends with \\\\\\\\"),
            ("\\", "\\\\"),
            ("quote \" and ' stay", "quote \" and ' stay"),
            ("é 🦀", "é 🦀"),
            ("", ""),
            ("\n\n", ""),
            ("nel\u{85}here", "nel here"),
        ];
        for (input, want) in cases {
            assert_eq!(text_value(input), *want, "{input:?}");
        }
        let mut rng = Rng(42);
        for _ in 0..3000 {
            let s = rng.string(20);
            let t = text_value(&s);
            for prefix in ["Description=", "# "] {
                let line = format!("{prefix}{t}");
                assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
                let trailing = line.len() - line.trim_end_matches('\\').len();
                assert_eq!(trailing % 2, 0, "{line:?} would continue");
            }
            // Specifiers are all escaped.
            assert!(unit_printf(t.as_bytes()).is_ok(), "{t:?}");
        }
    }

    #[test]
    fn path_values() {
        let ok = |p: &str| path_value(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/var/lib/podc/x"), "/var/lib/podc/x");
        assert_eq!(ok("/a b/c"), "/a b/c");
        assert_eq!(ok("/a\"b'c"), "/a\"b'c");
        assert_eq!(ok("/a\\b"), "/a\\b");
        assert_eq!(ok("/100%/%n"), "/100%%/%%n");
        assert_eq!(ok("/é/🦀"), "/é/🦀");
        assert_eq!(ok("/a/./b//c/"), "/a/./b//c/");
        for bad in [
            "",
            "relative",
            "./x",
            "/a/../b",
            "/..",
            "/a\nb",
            "/a\0b",
            "/a\tb",
            "/trailing ",
            "/trailing\\",
        ] {
            assert!(path_value(bad).is_err(), "{bad:?}");
        }
        assert!(path_value(&format!("/{}", "a".repeat(255))).is_ok());
        assert!(path_value(&format!("/{}", "a".repeat(256))).is_err());
        assert!(path_value(&"/aaaaaaa".repeat(600)).is_err());
        // Round trip through the line reader and specifier expansion.
        for p in ["/a b", "/x%y", "/q\"'", "/back\\slash/x"] {
            let line = format!("WorkingDirectory={}", ok(p));
            let (_, v) = parse_unit_line(&line).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                unit_printf(v.as_bytes()).ok().and_then(|b| utf8(b).ok()),
                Some(p.to_string())
            );
        }
    }

    fn bind(src: &str, dst: &str, ignore_missing: bool, recursive: bool) -> Bind {
        Bind {
            src: src.to_string(),
            dst: dst.to_string(),
            ignore_missing,
            recursive,
        }
    }

    #[test]
    fn bind_paths_round_trip() {
        let paths = [
            "/plain",
            "/with space",
            "/with:colon",
            "/a:b c:d",
            "/tab\u{9}less",
            "/back\\slash",
            "/trailing\\",
            "/dq\"quote",
            "/sq'quote",
            "/pct%n",
            "/dollar$X",
            "/é/🦀",
            "/-dash",
            "/",
        ];
        for src in paths {
            for dst in paths {
                for (ignore, rec) in [(false, true), (true, false), (true, true), (false, false)] {
                    let entry = match try_path_list_entry_with(src, Some(dst), ignore, rec) {
                        Ok(e) => e,
                        // Control characters are refused, not mangled.
                        Err(_) if src.contains('\t') || dst.contains('\t') => continue,
                        Err(e) => panic!("{src:?} {dst:?}: {e}"),
                    };
                    let line = format!("BindReadOnlyPaths={entry}");
                    let (_, v) = parse_unit_line(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
                    assert_eq!(
                        parse_bind_paths(&v),
                        Ok(vec![bind(src, dst, ignore, rec)]),
                        "{line:?}"
                    );
                }
            }
        }
        // Several entries on one line, joined by single spaces.
        let entries: Vec<String> = ["/a b", "/c:d", "/e"]
            .iter()
            .map(|p| path_list_entry(p, Some("/mnt/x y")))
            .collect();
        assert_eq!(
            parse_bind_paths(&entries.join(" ")),
            Ok(vec![
                bind("/a b", "/mnt/x y", false, true),
                bind("/c:d", "/mnt/x y", false, true),
                bind("/e", "/mnt/x y", false, true),
            ])
        );
        assert_eq!(
            try_path_list_entry("/s", None).map(|e| parse_bind_paths(&e)),
            Ok(Ok(vec![bind("/s", "/s", false, true)]))
        );
        assert_eq!(try_path_list_entry("/s:x", None).as_deref(), Ok("\"/s:x\""));
        assert_eq!(path_list_entry("/s:x", None), "\"/s:x\"");
        assert_eq!(
            try_path_list_entry_with("/s", None, true, false).as_deref(),
            Ok("\"-/s\":\"/s\":norbind")
        );
    }

    #[test]
    fn bind_paths_refuse_what_cannot_be_written() {
        for (src, dst) in [
            ("relative", None),
            ("/ok", Some("relative")),
            ("/a/../b", None),
            ("/ok", Some("/..")),
            ("/a\nb", None),
            ("/a\0b", None),
            ("/both'\"", None),
            ("", None),
        ] {
            assert!(try_path_list_entry(src, dst).is_err(), "{src:?} {dst:?}");
            // The infallible form still yields one well-formed line.
            let lossy = path_list_entry(src, dst);
            assert!(!lossy.chars().any(|c| c.is_control()), "{lossy:?}");
            // ...which systemd parses, refusing at most a relative path.
            match parse_bind_paths(&lossy) {
                Ok(_) => {}
                Err(e) => assert!(e.contains("not absolute"), "{lossy:?}: {e}"),
            }
        }
    }

    #[test]
    fn cunescape_port_matches_systemd_rules() {
        // Sanity checks of the test port itself, so a broken port cannot
        // make the round trips pass vacuously.
        let w = |s: &str| {
            let mut p = Some(0);
            extract_first_word(s.as_bytes(), &mut p, WHITESPACE, EXEC_FLAGS)
        };
        assert_eq!(w("\"a b\" c"), Ok(Some(b"a b".to_vec())));
        assert_eq!(w("  x"), Ok(Some(b"x".to_vec())));
        assert_eq!(w(""), Ok(None));
        assert_eq!(w("\"\""), Ok(Some(Vec::new())));
        assert_eq!(w("a\"b c\"d"), Ok(Some(b"ab cd".to_vec())));
        assert_eq!(w("'a\"b'"), Ok(Some(b"a\"b".to_vec())));
        assert_eq!(
            w("\\x41\\101\\u00e9\\s"),
            Ok(Some("AAé ".as_bytes().to_vec()))
        );
        assert_eq!(w("\"\\xff\""), Ok(Some(vec![0xff])));
        assert!(w("\"unterminated").is_err());
        assert!(w("trailing\\").is_err());
        assert!(w("\\x00").is_err());
        assert!(w("\\q").is_err());
        assert!(w("\\777").is_err());
        assert_eq!(
            parse_exec("/bin/echo a b").map(|r| r.1),
            Ok(strings(&["/bin/echo", "a", "b"]))
        );
        assert!(parse_exec("/bin/echo $X").is_err());
        assert!(parse_exec("/bin/echo ${X}").is_err());
        assert!(parse_exec("/bin/echo %n").is_err());
        assert!(parse_exec("/bin/echo a ; /bin/b").is_err());
        assert!(parse_exec("-/bin/echo").is_err());
        assert!(
            parse_exec("\"-/bin/echo\"").is_err(),
            "prefix is read after unquoting"
        );
        assert_eq!(
            parse_exec("/bin/echo $$X").map(|r| r.1),
            Ok(strings(&["/bin/echo", "$X"]))
        );
        assert!(parse_unit_line("A=b\\").is_err());
        assert!(parse_unit_line("A=b\\\\").is_ok());
    }

    /// Renders a unit with every kind of value and has the real systemd
    /// parser (`systemd-analyze verify`) load it: any syntax warning about
    /// the file fails the test. Skipped when systemd-analyze is missing.
    #[test]
    fn real_systemd_parser_accepts_rendered_unit() {
        let probe = std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            println!("systemd-analyze not installed; skipping the real parser check");
            return;
        }
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .filter(|p| check_executable(p).is_ok());
        let Some(exe) = exe else {
            println!("test binary path not usable as an executable; skipping");
            return;
        };
        let dir = std::env::temp_dir().join(format!("podc-escape-verify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let unit = dir.join("podc-escape-verify.service");
        let mut u = String::from("[Unit]\n");
        u.push_str(&format!(
            "Description={}\n",
            text_value("a 100% \"q\" \\ %n\nX=y \\")
        ));
        u.push_str(&format!("# {}\n", text_value("c\nExecStart=/x")));
        u.push_str("[Service]\nType=oneshot\n");
        for (i, v) in nasty().iter().enumerate() {
            let e = try_env_assignment(&format!("V{i}"), v).unwrap_or_default();
            u.push_str(&format!("Environment={e}\n"));
        }
        for p in ["/a b", "/c:d", "/e\\", "/f\"g", "/h'i", "/%n$X"] {
            let b = try_path_list_entry_with(p, Some("/mnt/x y"), true, true).unwrap_or_default();
            u.push_str(&format!("BindReadOnlyPaths={b}\n"));
        }
        u.push_str(&format!(
            "WorkingDirectory={}\n",
            path_value("/a b/\"c\" 'd' \\ %n $X").unwrap_or_default()
        ));
        let mut argv = vec![exe];
        argv.extend(nasty());
        u.push_str(&format!(
            "ExecStart={}\n",
            exec_command(&argv).unwrap_or_default()
        ));
        let written = std::fs::write(&unit, &u);
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(written.is_ok(), "could not write the unit");
        let Ok(out) = out else {
            println!("systemd-analyze did not run; skipping");
            return;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = unit.to_string_lossy();
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(name.as_ref()))
            .collect();
        assert!(
            complaints.is_empty(),
            "systemd complained:\n{}",
            complaints.join("\n")
        );
    }

    /// Cases checked against the real `systemd-escape` binary (below).
    const ESCAPE_CASES: &[(&str, &str)] = &[
        ("", ""),
        ("a", "a"),
        ("-", "\\x2d"),
        ("/", "-"),
        (".", "\\x2e"),
        (".a", "\\x2ea"),
        ("a.b", "a.b"),
        ("a./.b", "a.-.b"),
        ("a/b", "a-b"),
        ("/a/b/", "-a-b-"),
        ("a-b", "a\\x2db"),
        ("a b", "a\\x20b"),
        ("é", "\\xc3\\xa9"),
        ("🦀", "\\xf0\\x9f\\xa6\\x80"),
        ("a\\b", "a\\x5cb"),
        ("a:b_c", "a:b_c"),
        ("//a//b", "--a--b"),
        ("my-pod_1.Ctr", "my\\x2dpod_1.Ctr"),
        ("x@y", "x\\x40y"),
        ("$%&*", "\\x24\\x25\\x26\\x2a"),
        ("\t\n", "\\x09\\x0a"),
        ("ABCxyz019", "ABCxyz019"),
    ];

    const PATH_ESCAPE_CASES: &[(&str, &str)] = &[
        ("/", "-"),
        ("//", "-"),
        ("/.", "-"),
        ("/a/b/", "a-b"),
        ("//a//b", "a-b"),
        ("/a/./b", "a-b"),
        ("/var/lib/podc", "var-lib-podc"),
        ("/a-b/c d", "a\\x2db-c\\x20d"),
        ("/.hidden/x", "\\x2ehidden-x"),
        ("/a/.b", "a-.b"),
        ("/é", "\\xc3\\xa9"),
    ];

    #[test]
    fn unit_name_escape_table() {
        for (input, want) in ESCAPE_CASES {
            assert_eq!(unit_name_escape(input), *want, "{input:?}");
        }
        for (input, want) in PATH_ESCAPE_CASES {
            assert_eq!(
                unit_name_path_escape(input).as_deref(),
                Ok(*want),
                "{input:?}"
            );
        }
        for bad in ["", "a", "a/b", "/a/../b", "/..", "/a\0"] {
            assert!(unit_name_path_escape(bad).is_err(), "{bad:?}");
        }
        assert_eq!(unit_name_escape("a\0b"), "a\\x00b");
    }

    /// Runs the real `systemd-escape` with `args`; `None` when it is not
    /// installed.
    fn systemd_escape(args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("systemd-escape")
            .args(args)
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?;
        Some(s.strip_suffix('\n').unwrap_or(&s).to_string())
    }

    #[test]
    fn unit_name_escape_matches_systemd_escape() {
        if systemd_escape(&["x"]).is_none() {
            println!("systemd-escape not installed; skipping the comparison with it");
            return;
        }
        let mut rng = Rng(7);
        let mut inputs: Vec<String> = ESCAPE_CASES.iter().map(|(i, _)| i.to_string()).collect();
        inputs.extend(
            nasty()
                .into_iter()
                .filter(|s| !s.is_empty() && s.len() < 200),
        );
        inputs.extend((0..200).map(|_| rng.string(10)).filter(|s| !s.is_empty()));
        for input in &inputs {
            assert_eq!(
                systemd_escape(&["--", input]).as_deref(),
                Some(unit_name_escape(input).as_str()),
                "systemd-escape {input:?}"
            );
        }
        let mut paths: Vec<String> = PATH_ESCAPE_CASES
            .iter()
            .map(|(i, _)| i.to_string())
            .collect();
        paths.extend((0..200).map(|_| format!("/{}", rng.string(10))));
        for p in &paths {
            let Ok(mine) = unit_name_path_escape(p) else {
                continue;
            };
            assert_eq!(
                systemd_escape(&["--path", "--", p]).as_deref(),
                Some(mine.as_str()),
                "systemd-escape --path {p:?}"
            );
        }
    }
}
