//! A port of the systemd 252 code that reads what podc writes into unit
//! files: the unit file reader (`config_parse`), `extract_first_word`,
//! `cunescape_one`, `config_parse_exec`, `config_parse_environ`,
//! `config_parse_bind_paths`, specifier and exec-time variable expansion.
//!
//! It is independent of podc's own code on purpose, so tests can check
//! podc's output against it. Shared by `src/escape.rs`'s unit tests and the
//! integration tests (`#[path]`). Where systemd would accept input that
//! podc never means to write (an unknown specifier, `$VAR` splitting, a
//! line it ignores with a warning) the port returns an error.
#![allow(dead_code)]

/// systemd's `LONG_LINE_MAX`: a longer line fails the unit.
pub const LONG_LINE_MAX: usize = 1024 * 1024;

/// Port of `env_name_is_valid`: ASCII letters, digits and `_`, not empty,
/// not starting with a digit.
pub fn env_name_is_valid(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub const WHITESPACE: &[u8] = b" \t\n\r";

#[derive(Clone, Copy, Default)]
pub struct Flags {
    pub unquote: bool,
    pub cunescape: bool,
    pub dont_coalesce: bool,
    pub unescape_separators: bool,
}

pub const EXEC_FLAGS: Flags = Flags {
    unquote: true,
    cunescape: true,
    dont_coalesce: false,
    unescape_separators: false,
};

pub fn unhex(c: u8) -> Option<u32> {
    char::from(c).to_digit(16)
}

/// Port of systemd's `cunescape_one(p, SIZE_MAX, ..., accept_nul=false)`:
/// the bytes the escape stands for and how many input bytes it used.
pub fn cunescape_one(p: &[u8]) -> Option<(Vec<u8>, usize)> {
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    let simple = |b: u8| Some((vec![b], 1));
    let unichar = |n: usize| -> Option<(Vec<u8>, usize)> {
        let mut v: u32 = 0;
        for i in 1..=n {
            v = (v << 4) | unhex(at(i))?;
        }
        if v == 0 {
            return None;
        }
        let c = char::from_u32(v)?;
        Some((c.to_string().into_bytes(), n + 1))
    };
    match at(0) {
        b'a' => simple(7),
        b'b' => simple(8),
        b'f' => simple(12),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'v' => simple(11),
        b'\\' => simple(b'\\'),
        b'"' => simple(b'"'),
        b'\'' => simple(b'\''),
        b's' => simple(b' '),
        b'x' => {
            let v = (unhex(at(1))? << 4) | unhex(at(2))?;
            if v == 0 {
                return None;
            }
            Some((vec![v as u8], 3))
        }
        b'u' => unichar(4),
        b'U' => unichar(8),
        c @ b'0'..=b'7' => {
            let oct = |b: u8| (b'0'..=b'7').contains(&b).then(|| u32::from(b - b'0'));
            let v = (oct(c)? << 6) | (oct(at(1))? << 3) | oct(at(2))?;
            if v == 0 || v > 255 {
                return None;
            }
            Some((vec![v as u8], 3))
        }
        _ => None,
    }
}

/// Port of systemd's `extract_first_word()` for the flags podc's output
/// meets. `p` is the C `*p`: an offset into `input`, `None` for NULL.
/// Returns `Ok(None)` when there is no further word.
pub fn extract_first_word(
    input: &[u8],
    p: &mut Option<usize>,
    separators: &[u8],
    f: Flags,
) -> Result<Option<Vec<u8>>, String> {
    let Some(mut pos) = *p else {
        return Ok(None);
    };
    let at = |i: usize| input.get(i).copied().unwrap_or(0);
    let sep = |c: u8| c != 0 && separators.contains(&c);
    // The C code allocates the word lazily; `has_word` says whether it has.
    let mut s: Vec<u8> = Vec::new();
    let mut has_word = f.dont_coalesce;
    // finish_force_terminate: *p = NULL, return the word if any.
    macro_rules! force_terminate {
        () => {{
            *p = None;
            return Ok(has_word.then_some(s));
        }};
    }
    macro_rules! force_next {
        ($pos:expr) => {{
            *p = Some($pos);
            return Ok(Some(s));
        }};
    }
    loop {
        let c = at(pos);
        if c == 0 {
            force_terminate!();
        } else if sep(c) {
            if f.dont_coalesce {
                force_next!(pos + 1);
            }
        } else {
            has_word = true;
            break;
        }
        pos += 1;
    }
    let mut quote = 0u8;
    let mut backslash = false;
    loop {
        let c = at(pos);
        if backslash {
            if c == 0 {
                return Err("trailing backslash".to_string());
            }
            if f.cunescape || f.unescape_separators {
                let tail = input.get(pos..).unwrap_or(&[]);
                if let Some((bytes, used)) = f.cunescape.then(|| cunescape_one(tail)).flatten() {
                    s.extend(bytes);
                    pos += used - 1;
                } else if f.unescape_separators && (sep(c) || c == b'\\') {
                    s.push(c);
                } else {
                    return Err(format!("invalid escape \\{}", char::from(c)));
                }
            } else {
                s.push(c);
            }
            backslash = false;
        } else if quote != 0 {
            loop {
                let c = at(pos);
                if c == 0 {
                    return Err("unbalanced quotes".to_string());
                } else if c == quote {
                    quote = 0;
                    if f.unquote {
                        break;
                    }
                } else if c == b'\\' {
                    backslash = true;
                    break;
                }
                s.push(c);
                if quote == 0 {
                    break;
                }
                pos += 1;
            }
        } else {
            loop {
                let c = at(pos);
                if c == 0 {
                    force_terminate!();
                } else if (c == b'\'' || c == b'"') && f.unquote {
                    quote = c;
                    break;
                } else if c == b'\\' {
                    backslash = true;
                    break;
                } else if sep(c) {
                    if f.dont_coalesce {
                        force_next!(pos + 1);
                    }
                    loop {
                        let c = at(pos);
                        if c == 0 {
                            force_terminate!();
                        }
                        if !sep(c) {
                            break;
                        }
                        pos += 1;
                    }
                    force_next!(pos);
                }
                s.push(c);
                pos += 1;
            }
        }
        pos += 1;
    }
}

/// Specifier expansion as far as podc's output is concerned: `%%` is a
/// literal `%`; any other specifier is a bug in the escaping.
pub fn unit_printf(word: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut it = word.iter();
    while let Some(&b) = it.next() {
        if b == b'%' {
            match it.next() {
                Some(b'%') => out.push(b'%'),
                other => return Err(format!("unexpected specifier %{other:?}")),
            }
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

/// A piece of one argument after systemd's exec-time expansion: literal
/// text, or the value of `${NAME}` (kept as a reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Text(String),
    Var(String),
}

/// Port of systemd 252's `replace_env_argv` for one word, with `${NAME}`
/// kept as [`Seg::Var`]: `$$` is a literal `$`, `${NAME}` a reference, any
/// other `$` stays. What systemd would do but podc never means is an error:
/// a word that starts with `$NAME` (split into words), `${NAME:...}`
/// (left unexpanded) and an unterminated `${`.
pub fn replace_env_segments(word: &[u8]) -> Result<Vec<Seg>, String> {
    if word.first() == Some(&b'$') && !matches!(word.get(1), Some(b'{') | Some(b'$')) {
        return Err("word would be split as $VAR".to_string());
    }
    let mut out = Vec::new();
    let mut text = Vec::new();
    let mut i = 0;
    while let Some(&b) = word.get(i) {
        match (b, word.get(i + 1)) {
            (b'$', Some(b'$')) => {
                text.push(b'$');
                i += 2;
            }
            (b'$', Some(b'{')) => {
                let body = &word[i + 2..];
                let end = body
                    .iter()
                    .position(|c| *c == b'}')
                    .ok_or("unterminated ${")?;
                let name = &body[..end];
                if name.contains(&b':') {
                    return Err("${NAME:...} is not expanded by systemd 252".to_string());
                }
                out.push(Seg::Text(utf8(std::mem::take(&mut text))?));
                out.push(Seg::Var(utf8(name.to_vec())?));
                i += end + 3;
            }
            _ => {
                text.push(b);
                i += 1;
            }
        }
    }
    out.push(Seg::Text(utf8(text)?));
    out.retain(|s| *s != Seg::Text(String::new()));
    Ok(out)
}

/// [`replace_env_segments`] for a word that must come out literal: a `${`
/// expansion is an error.
pub fn replace_env(word: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for seg in replace_env_segments(word)? {
        match seg {
            Seg::Text(t) => out.extend(t.into_bytes()),
            Seg::Var(_) => return Err("unexpected ${} expansion".to_string()),
        }
    }
    Ok(out)
}

pub fn utf8(v: Vec<u8>) -> Result<String, String> {
    String::from_utf8(v).map_err(|e| e.to_string())
}

/// The unit file reader for one `KEY=value` line: no line break, no
/// continuation, surrounding whitespace stripped, split at the first `=`.
pub fn parse_unit_line(line: &str) -> Result<(String, String), String> {
    if line.contains(['\n', '\r', '\0']) {
        return Err("line break inside the line".to_string());
    }
    let trailing = line.len() - line.trim_end_matches('\\').len();
    if trailing % 2 == 1 {
        return Err("line continues onto the next one".to_string());
    }
    if line.len() > LONG_LINE_MAX {
        return Err("line too long".to_string());
    }
    let (k, v) = line.split_once('=').ok_or("no '='")?;
    Ok((
        k.trim_matches(|c| " \t".contains(c)).to_string(),
        v.trim_matches(|c| " \t".contains(c)).to_string(),
    ))
}

/// Port of `config_parse_exec` for one command (no `;` chains), then
/// exec-time environment expansion. Returns (executable path, argv).
pub fn parse_exec(rvalue: &str) -> Result<(String, Vec<String>), String> {
    let (path, argv) = parse_exec_unexpanded(rvalue)?;
    let argv = argv
        .into_iter()
        .map(|w| replace_env(&w).and_then(utf8))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((path, argv))
}

/// [`parse_exec`] where the arguments may hold `${NAME}` references: each
/// argument as its literal text and references.
pub fn parse_exec_words(rvalue: &str) -> Result<(String, Vec<Vec<Seg>>), String> {
    let (path, argv) = parse_exec_unexpanded(rvalue)?;
    let argv = argv
        .iter()
        .map(|w| replace_env_segments(w))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((path, argv))
}

/// `config_parse_exec` proper: the executable and the argv words, unquoted
/// and with specifiers expanded, before exec-time variable expansion.
fn parse_exec_unexpanded(rvalue: &str) -> Result<(String, Vec<Vec<u8>>), String> {
    let input = rvalue.as_bytes();
    let mut p = Some(0);
    let first = extract_first_word(input, &mut p, WHITESPACE, EXEC_FLAGS)?.ok_or("no command")?;
    if first == b";" {
        return Err("lone ';' as command".to_string());
    }
    let mut f = first.as_slice();
    let mut separate_argv0 = false;
    while let Some((&c, rest)) = f.split_first() {
        match c {
            b'@' if !separate_argv0 => separate_argv0 = true,
            b'-' | b':' | b'+' | b'!' => return Err(format!("prefix {}", char::from(c))),
            _ => break,
        }
        f = rest;
    }
    let path = utf8(unit_printf(f)?)?;
    if path.is_empty() {
        return Err("empty executable".to_string());
    }
    let mut argv: Vec<Vec<u8>> = Vec::new();
    if !separate_argv0 {
        argv.push(path.clone().into_bytes());
    }
    while let Some(pos) = p {
        let rest = input.get(pos..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        if rest[0] == b';' && rest.get(1).is_none_or(|c| WHITESPACE.contains(c)) {
            return Err("unquoted ';' separator".to_string());
        }
        if rest.starts_with(b"\\;") && rest.get(2).is_none_or(|c| WHITESPACE.contains(c)) {
            return Err("\\; word".to_string());
        }
        match extract_first_word(input, &mut p, WHITESPACE, EXEC_FLAGS)? {
            Some(w) => argv.push(unit_printf(&w)?),
            None => break,
        }
    }
    if argv.is_empty() {
        return Err("no argv[0]".to_string());
    }
    Ok((path, argv))
}

/// Port of `config_parse_environ`: the assignments of one line.
pub fn parse_environ(rvalue: &str) -> Result<Vec<(String, String)>, String> {
    let input = rvalue.as_bytes();
    let mut p = Some(0);
    let mut out = Vec::new();
    let flags = Flags {
        unquote: true,
        cunescape: true,
        ..Flags::default()
    };
    while let Some(w) = extract_first_word(input, &mut p, WHITESPACE, flags)? {
        let w = utf8(unit_printf(&w)?)?;
        let (k, v) = w.split_once('=').ok_or("assignment without '='")?;
        if !env_name_is_valid(k) {
            return Err(format!("invalid name {k:?}"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[derive(Debug, PartialEq)]
pub struct Bind {
    pub src: String,
    pub dst: String,
    pub ignore_missing: bool,
    pub recursive: bool,
}

/// Port of `config_parse_bind_paths`.
pub fn parse_bind_paths(rvalue: &str) -> Result<Vec<Bind>, String> {
    let input = rvalue.as_bytes();
    let seps = b": \t\n\r";
    let flags = Flags {
        unquote: true,
        dont_coalesce: true,
        unescape_separators: true,
        ..Flags::default()
    };
    let prev_is_colon = |p: Option<usize>| {
        p.and_then(|i| i.checked_sub(1))
            .and_then(|i| input.get(i))
            .is_some_and(|c| *c == b':')
    };
    let mut p = Some(0);
    let mut out = Vec::new();
    while let Some(src) = extract_first_word(input, &mut p, seps, flags)? {
        let src = utf8(unit_printf(&src)?)?;
        let (ignore_missing, src) = match src.strip_prefix('-') {
            Some(s) => (true, s.to_string()),
            None => (false, src),
        };
        if !src.starts_with('/') {
            return Err(format!("source not absolute: {src:?}"));
        }
        let mut dst = src.clone();
        let mut recursive = true;
        if prev_is_colon(p) {
            let d = extract_first_word(input, &mut p, seps, flags)?.ok_or("no destination")?;
            dst = utf8(unit_printf(&d)?)?;
            if !dst.starts_with('/') {
                return Err(format!("destination not absolute: {dst:?}"));
            }
            if prev_is_colon(p) {
                let o = extract_first_word(
                    input,
                    &mut p,
                    WHITESPACE,
                    Flags {
                        unquote: true,
                        ..Flags::default()
                    },
                )?
                .unwrap_or_default();
                recursive = match o.as_slice() {
                    b"" | b"rbind" => true,
                    b"norbind" => false,
                    _ => return Err("bad option".to_string()),
                };
            }
        }
        out.push(Bind {
            src,
            dst,
            ignore_missing,
            recursive,
        });
    }
    Ok(out)
}

/// One assignment of a unit file, as `config_parse` hands it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub section: String,
    pub key: String,
    pub value: String,
}

/// systemd's `read_line`: a line ends at `\n`, `\r\n`, `\r` or NUL.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\n', '\r', '\0']).unwrap_or(rest.len());
        out.push(&rest[..end]);
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = rest.get(end + skip..).unwrap_or("");
    }
    out
}

/// Whether `s` ends in an unescaped backslash (`config_parse`'s scan).
fn continues(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        escaped = !escaped && c == '\\';
    }
    escaped
}

/// Port of `config_parse` + `parse_line` for a whole unit file: comment
/// lines (`#`, `;`, also inside a continuation) and blank lines are
/// skipped, a line ending in an unescaped `\` continues with a space,
/// `[Section]` headers, `KEY=value` with whitespace stripped.
pub fn parse_unit_file(text: &str) -> Result<Vec<Directive>, String> {
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    let mut continuation: Option<String> = None;
    for line in physical_lines(text) {
        if line.len() > LONG_LINE_MAX {
            return Err("line too long: systemd refuses the unit".to_string());
        }
        let l = line.trim_start_matches([' ', '\t', '\n', '\r']);
        if l.starts_with(['#', ';']) {
            continue;
        }
        let mut p = match continuation.take() {
            Some(c) => c + line,
            None => line.to_string(),
        };
        if continues(&p) {
            p.pop();
            p.push(' ');
            continuation = Some(p);
            continue;
        }
        parse_line(&p, &mut section, &mut out)?;
    }
    if let Some(p) = continuation {
        parse_line(&p, &mut section, &mut out)?;
    }
    Ok(out)
}

/// `parse_line`: one logical line.
fn parse_line(
    line: &str,
    section: &mut Option<String>,
    out: &mut Vec<Directive>,
) -> Result<(), String> {
    let l = line.trim_matches([' ', '\t', '\n', '\r']);
    if l.is_empty() {
        return Ok(());
    }
    if let Some(h) = l.strip_prefix('[') {
        let name = h.strip_suffix(']').ok_or("invalid section header")?;
        *section = Some(name.to_string());
        return Ok(());
    }
    let sec = section.clone().ok_or("assignment outside of a section")?;
    let (k, v) = l.split_once('=').ok_or(format!("missing '=' in {l:?}"))?;
    let key = k.trim_matches([' ', '\t', '\n', '\r']);
    if key.is_empty() {
        return Err(format!("missing key name in {l:?}"));
    }
    out.push(Directive {
        section: sec,
        key: key.to_string(),
        value: v.trim_matches([' ', '\t', '\n', '\r']).to_string(),
    });
    Ok(())
}
