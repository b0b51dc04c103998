//! Terminal-safe text for strings podc did not write itself.
//!
//! Image configs, archive manifests and registry answers are hostile
//! (design §7). Printed raw, an escape sequence in an image's `created`
//! date clears the screen or sets the window title, a newline forges a row
//! of `podc image ls`, and a bidi override makes text read backwards.
//! Every such string goes through [`safe`] (or [`safe_lines`] for a
//! multi-line text podc composed) before a terminal sees it, and JSON or
//! YAML output through [`json_safe`]. Container output (`podc logs`) is
//! the user's own business and is passed as it is, as `kubectl logs` does.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters a terminal obeys instead of showing: C0 controls, DEL, C1
/// controls (U+0080–U+009F; U+009B is CSI), the bidi embeddings,
/// overrides, isolates and marks, and the Unicode line separators.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f'
        | '\x7f'..='\u{9f}'
        | '\u{061c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn escape_where(s: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` on one line with every [`is_unsafe`] character shown as an escape:
/// `\n`, `\r`, `\t`, `\x1b` for the other C0 controls and DEL, `\u{9b}`
/// or `\u{202e}` for the rest.
pub fn safe(s: &str) -> Cow<'_, str> {
    escape_where(s, is_unsafe)
}

/// [`safe`] that keeps newlines: for texts podc composed over several
/// lines (error chains) that may quote hostile strings.
pub fn safe_lines(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| c != '\n' && is_unsafe(c))
}

/// JSON text (or YAML whose strings are JSON-quoted) with the characters
/// JSON allows raw but a terminal obeys (DEL, C1 controls, bidi controls)
/// written as `\uXXXX`. The text stays valid and every value the same:
/// outside strings JSON is ASCII, and serde already escapes C0 controls.
pub fn json_safe(text: &str) -> Cow<'_, str> {
    let raw_ok = |c: char| (c as u32) < 0x7f;
    if text.chars().all(|c| raw_ok(c) || !is_unsafe(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if raw_ok(c) || !is_unsafe(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_c1_and_bidi() {
        assert_eq!(
            safe("\x1b[2J\x1b]0;pwned\x07\nFAKE-ROW\r\t\0\x7f"),
            "\\x1b[2J\\x1b]0;pwned\\x07\\nFAKE-ROW\\r\\t\\x00\\x7f"
        );
        assert_eq!(safe("a\u{9b}31m\u{85}"), "a\\u{9b}31m\\u{85}");
        assert_eq!(
            safe("\u{202a}\u{202e}txt.exe\u{2066}\u{2069}\u{200f}\u{2028}"),
            "\\u{202a}\\u{202e}txt.exe\\u{2066}\\u{2069}\\u{200f}\\u{2028}"
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for s in [
            "2026-01-02T03:04:05Z",
            "busybox:1.36",
            "naïve café ☃ 日本",
            "",
        ] {
            assert!(matches!(safe(s), Cow::Borrowed(_)), "{s}");
            assert!(matches!(json_safe(s), Cow::Borrowed(_)), "{s}");
        }
        assert_eq!(
            safe("\u{a0}\u{2030}"),
            "\u{a0}\u{2030}",
            "just outside the ranges"
        );
    }

    #[test]
    fn safe_lines_keeps_only_newlines() {
        assert_eq!(safe_lines("a\nb\x1b[1m\r"), "a\nb\\x1b[1m\\r");
    }

    #[test]
    fn output_has_no_unsafe_character() {
        let all: String = (0u32..0x2100).filter_map(char::from_u32).collect();
        assert!(!safe(&all).chars().any(is_unsafe));
        assert!(!safe_lines(&all).chars().any(|c| c != '\n' && is_unsafe(c)));
    }

    #[test]
    fn json_stays_valid_and_equal() {
        let v = serde_json::json!({"created": "\x1b[2J\n\u{9b}1m\u{202e}x\x7f", "n": 1});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_safe(&text);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
        assert!(
            safe.contains("\\u009b") && safe.contains("\\u202e"),
            "{safe}"
        );
    }
}
