//! Kubernetes `$(VAR)` expansion for `command`, `args` and `env[].value`.
//!
//! Kubernetes expands `$(VAR)` references itself (in the kubelet) before a
//! container starts; the container runtime never sees them. podc has no
//! kubelet, so it must do the same expansion at build time, *before* the
//! result is escaped for systemd (systemd has its own, different `$VAR`
//! syntax, which `escape` neutralises).
//!
//! The algorithm is a line-by-line port of Kubernetes'
//! `third_party/forked/golang/expansion/expand.go` (`Expand` together with
//! the mapping returned by `MappingFuncFor`), because users' manifests rely on
//! its exact corner cases:
//!
//! * `$(NAME)` is replaced by the value of `NAME` when it is defined;
//! * `$(NAME)` is left exactly as written when `NAME` is not defined;
//! * `$$` becomes a single `$`, so `$$(NAME)` yields the literal `$(NAME)`;
//! * an unclosed `$(` is copied as is and scanning continues after the `(`;
//! * `$` followed by any other character (or at the very end) is copied as is;
//! * expansion is not recursive: a value that itself contains `$(X)` is
//!   inserted verbatim, and the name between the parentheses is taken
//!   literally up to the first `)` (so `$(A$(B))` looks up `A$(B`).

/// Expands Kubernetes `$(VAR)` references in `input`.
///
/// `lookup` resolves a variable name; `None` means "not defined", in which
/// case the reference is kept as written (`$(NAME)`), as Kubernetes'
/// `MappingFuncFor` does.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    for piece in expand_pieces(input, lookup) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Value(v) => out.push_str(&v),
        }
    }
    out
}

/// A piece of an expanded string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a, T> {
    /// Text of the input that stays (with `$$` already reduced to `$`).
    Text(&'a str),
    /// What `lookup` returned for a defined reference.
    Value(T),
}

/// [`expand`] that keeps what each reference resolved to apart from the
/// input's own text, for callers whose values are not plain strings (a
/// secret that systemd substitutes at start, see `crate::argv`).
pub fn expand_pieces<'a, T>(
    input: &'a str,
    lookup: &dyn Fn(&str) -> Option<T>,
) -> Vec<Piece<'a, T>> {
    let mut out = Vec::new();
    // Every special character is ASCII, so slicing right after one of them
    // always lands on a char boundary.
    let mut rest = input;
    loop {
        let Some(dollar) = rest.find('$') else {
            out.push(Piece::Text(rest));
            return out;
        };
        out.push(Piece::Text(&rest[..dollar]));
        // Everything after the operator.
        let after = &rest[dollar + 1..];
        let mut chars = after.chars();
        match chars.next() {
            // `$` at the very end of the input is preserved.
            None => {
                out.push(Piece::Text(&rest[dollar..]));
                return out;
            }
            // Escaped operator: `$$` -> `$`.
            Some('$') => {
                out.push(Piece::Text(&rest[dollar..dollar + 1]));
                rest = &after[1..];
            }
            Some('(') => {
                // Scan to the first closer; the name is everything between.
                let body = &after[1..];
                match body.find(')') {
                    Some(close) => {
                        let name = &body[..close];
                        match lookup(name) {
                            Some(value) => out.push(Piece::Value(value)),
                            // `$(NAME)` as written.
                            None => out.push(Piece::Text(&rest[dollar..dollar + close + 3])),
                        }
                        rest = &body[close + 1..];
                    }
                    None => {
                        // Incomplete reference: copy `$(` and keep scanning
                        // right after the opener, as Kubernetes does.
                        out.push(Piece::Text(&rest[dollar..dollar + 2]));
                        rest = body;
                    }
                }
            }
            // Operator that does not start an expression: copy it and the
            // following character unchanged.
            Some(c) => {
                out.push(Piece::Text(&rest[dollar..dollar + 1 + c.len_utf8()]));
                rest = chars.as_str();
            }
        }
    }
}

/// Expands a container's `env` list with Kubernetes semantics.
///
/// Each value is expanded against the entries *before* it, in order: a
/// variable may refer to any earlier one, never to itself or a later one, and
/// when a name is defined twice the later definition is what subsequent
/// entries see (the kubelet keeps a map that each entry overwrites). The
/// result has the same entries, in the same order, with expanded values;
/// duplicates are kept, and since a later `Environment=` assignment of the
/// same name overrides an earlier one in systemd too, the last one wins in
/// both worlds.
pub fn expand_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut defined: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(env.len());
    for (name, value) in env {
        let expanded = expand(value, &|n: &str| defined.get(n).cloned());
        defined.insert(name.as_str(), expanded.clone());
        out.push((name.clone(), expanded));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Kubernetes' `MappingFuncFor(contexts...)`: the first context that
    /// defines the name wins.
    fn mapping_for(
        contexts: Vec<HashMap<&'static str, &'static str>>,
    ) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            contexts
                .iter()
                .find_map(|c| c.get(name).map(|v| v.to_string()))
        }
    }

    /// The `doExpansionTest` table of Kubernetes' `expand_test.go`, every
    /// case, in order: (name, input, expected).
    const CASES: &[(&str, &str, &str)] = &[
        ("whole string", "$(VAR_A)", "A"),
        ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
        ("beginning", "$(VAR_A)-1", "A-1"),
        ("middle", "___$(VAR_B)___", "___B___"),
        ("end", "___$(VAR_C)", "___C"),
        ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
        ("escape & expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        (
            "compound escape",
            "$$(VAR_A)_$$(VAR_B)",
            "$(VAR_A)_$(VAR_B)",
        ),
        ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
        ("backslash escape ignored", "foo\\$(VAR_C)bar", "foo\\Cbar"),
        (
            "backslash escape ignored",
            "foo\\\\$(VAR_C)bar",
            "foo\\\\Cbar",
        ),
        (
            "lots of backslashes",
            "foo\\\\\\\\$(VAR_A)bar",
            "foo\\\\\\\\Abar",
        ),
        (
            "nested var references",
            "$(VAR_A$(VAR_B))",
            "$(VAR_A$(VAR_B))",
        ),
        (
            "nested var references second type",
            "$(VAR_A$(VAR_B)",
            "$(VAR_A$(VAR_B)",
        ),
        ("value is a reference", "$(VAR_REF)", "$(VAR_A)"),
        (
            "value is a reference x 2",
            "%%$(VAR_REF)--$(VAR_REF)%%",
            "%%$(VAR_A)--$(VAR_A)%%",
        ),
        ("empty var", "foo$(VAR_EMPTY)bar", "foobar"),
        (
            "unterminated expression",
            "foo$(VAR_Awhoops!",
            "foo$(VAR_Awhoops!",
        ),
        (
            "expression without operator",
            "f00__(VAR_A)__",
            "f00__(VAR_A)__",
        ),
        ("shell special vars pass through", "$?_boo_$!", "$?_boo_$!"),
        ("bare operators are ignored", "$VAR_A", "$VAR_A"),
        (
            "undefined vars are passed through",
            "$(VAR_DNE)",
            "$(VAR_DNE)",
        ),
        (
            "undefined vars are passed through",
            "$(VAR_A)-$(VAR_DNE)",
            "A-$(VAR_DNE)",
        ),
        (
            "multiple (even) operators, var undefined",
            "$$$$$$(BIG_MONEY)",
            "$$$(BIG_MONEY)",
        ),
        (
            "multiple (even) operators, var defined",
            "$$$$$$(VAR_A)",
            "$$$(VAR_A)",
        ),
        (
            "multiple (odd) operators, var undefined",
            "$$$$$$$(GOOD_ODDS)",
            "$$$$(GOOD_ODDS)",
        ),
        (
            "multiple (odd) operators, var defined",
            "$$$$$$$(VAR_A)",
            "$$$A",
        ),
        ("missing open expression", "$VAR_A)", "$VAR_A)"),
        ("shell syntax ignored", "${VAR_A}", "${VAR_A}"),
        (
            "trailing incomplete expression not consumed",
            "$(VAR_B)_______$(A",
            "B_______$(A",
        ),
        (
            "trailing incomplete expression, no content, is not consumed",
            "$(VAR_C)_______$(",
            "C_______$(",
        ),
        (
            "operator at end of input string is preserved",
            "$(VAR_A)foobarzab$",
            "Afoobarzab$",
        ),
        (
            "shell escaped incomplete expr",
            "foo-\\$(VAR_A",
            "foo-\\$(VAR_A",
        ),
        ("lots of $( in middle", "--$($($($($--", "--$($($($($--"),
        (
            "lots of $( in beginning",
            "$($($($($--foo$(",
            "$($($($($--foo$(",
        ),
        ("lots of $( at end", "foo0--$($($($(", "foo0--$($($($("),
        (
            "escaped operators in variable names are not escaped",
            "$(foo$$var)",
            "$(foo$$var)",
        ),
        ("newline not expanded", "\n", "\n"),
    ];

    fn run_table(lookup: &dyn Fn(&str) -> Option<String>) {
        let mut failures = Vec::new();
        for (name, input, expected) in CASES {
            let got = expand(input, lookup);
            if got != *expected {
                failures.push(format!(
                    "{name}: expand({input:?}) = {got:?}, want {expected:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn pieces_keep_values_apart_from_the_inputs_text() {
        let lookup = |n: &str| (n == "S").then_some(7);
        assert_eq!(
            expand_pieces("a$(S)b$$(S)$(X)$(", &lookup),
            [
                Piece::Text("a"),
                Piece::Value(7),
                Piece::Text("b"),
                Piece::Text("$"),
                Piece::Text("(S)"),
                Piece::Text("$(X)"),
                Piece::Text(""),
                Piece::Text("$("),
                Piece::Text(""),
            ]
        );
    }

    #[test]
    fn kubernetes_table_single_context() {
        // TestMapping
        let m = mapping_for(vec![HashMap::from([
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ])]);
        run_table(&m);
    }

    #[test]
    fn kubernetes_table_dual_context() {
        // TestMappingDual
        let m = mapping_for(vec![
            HashMap::from([("VAR_A", "A"), ("VAR_EMPTY", "")]),
            HashMap::from([("VAR_B", "B"), ("VAR_C", "C"), ("VAR_REF", "$(VAR_A)")]),
        ]);
        run_table(&m);
    }

    #[test]
    fn kubernetes_mapping_func_for() {
        // TestMappingFuncFor: a defined name maps to its value, an undefined
        // one is kept in the expansion syntax.
        let m = mapping_for(vec![HashMap::from([("VAR_A", "A")])]);
        assert_eq!(expand("$(VAR_A)", &m), "A");
        assert_eq!(expand("$(VAR_DNE)", &m), "$(VAR_DNE)");
    }

    #[test]
    fn kubernetes_map_reference() {
        // TestMapReference: each entry sees the already expanded earlier ones.
        let env = vec![
            ("FOO".to_string(), "bar".to_string()),
            ("ZOO".to_string(), "$(FOO)-1".to_string()),
            ("BLU".to_string(), "$(ZOO)-2".to_string()),
            ("INCOMPLETE".to_string(), "$(ZOO)-2-$(DNE)".to_string()),
        ];
        let got = expand_env(&env);
        let want = vec![
            ("FOO".to_string(), "bar".to_string()),
            ("ZOO".to_string(), "bar-1".to_string()),
            ("BLU".to_string(), "bar-1-2".to_string()),
            ("INCOMPLETE".to_string(), "bar-1-2-$(DNE)".to_string()),
        ];
        assert_eq!(got, want);
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn env_forward_references_stay_literal() {
        let got = expand_env(&pairs(&[("A", "$(B)"), ("B", "b")]));
        assert_eq!(got, pairs(&[("A", "$(B)"), ("B", "b")]));
    }

    #[test]
    fn env_self_reference_sees_previous_definition_only() {
        let got = expand_env(&pairs(&[("A", "$(A)")]));
        assert_eq!(got, pairs(&[("A", "$(A)")]));
        let got = expand_env(&pairs(&[("A", "x"), ("A", "$(A)y"), ("B", "$(A)")]));
        assert_eq!(got, pairs(&[("A", "x"), ("A", "xy"), ("B", "xy")]));
    }

    #[test]
    fn env_later_definition_overrides_for_subsequent_entries() {
        let got = expand_env(&pairs(&[
            ("A", "1"),
            ("B", "$(A)"),
            ("A", "2"),
            ("C", "$(A)"),
        ]));
        assert_eq!(
            got,
            pairs(&[("A", "1"), ("B", "1"), ("A", "2"), ("C", "2")])
        );
    }

    #[test]
    fn env_values_are_not_re_expanded() {
        // B's value contains an escaped reference; C must get the literal
        // text, not a second round of expansion.
        let got = expand_env(&pairs(&[("A", "a"), ("B", "$$(A)"), ("C", "$(B)")]));
        assert_eq!(got, pairs(&[("A", "a"), ("B", "$(A)"), ("C", "$(A)")]));
    }

    #[test]
    fn env_empty() {
        assert!(expand_env(&[]).is_empty());
    }

    #[test]
    fn non_ascii_is_preserved() {
        let m = mapping_for(vec![HashMap::from([("Ä", "ü"), ("X", "🦀")])]);
        assert_eq!(expand("$é$(Ä)$(X)$$€$", &m), "$éü🦀$€$");
        assert_eq!(expand("é$(", &m), "é$(");
        assert_eq!(expand("$🦀", &m), "$🦀");
    }

    #[test]
    fn empty_and_degenerate_inputs() {
        let m = mapping_for(vec![HashMap::from([("", "EMPTY-NAME")])]);
        assert_eq!(expand("", &m), "");
        assert_eq!(expand("$", &m), "$");
        assert_eq!(expand("$$", &m), "$");
        assert_eq!(expand("$(", &m), "$(");
        assert_eq!(expand("$()", &m), "EMPTY-NAME");
        assert_eq!(expand("$)", &m), "$)");
        let none = |_: &str| None;
        assert_eq!(expand("$()", &none), "$()");
    }

    #[test]
    fn lookup_receives_the_exact_name() {
        let seen = std::cell::RefCell::new(Vec::new());
        let lookup = |n: &str| {
            seen.borrow_mut().push(n.to_string());
            None
        };
        expand("$(a b)$(A$(B)$( )", &lookup);
        assert_eq!(*seen.borrow(), vec!["a b", "A$(B", " "]);
    }

    #[test]
    fn no_panic_on_pseudo_random_input() {
        // Small xorshift generator over an alphabet rich in the special
        // characters; checks totality and that text without `$` is untouched.
        let alphabet: Vec<char> = "$()ab\\é🦀 \n".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let m = mapping_for(vec![HashMap::from([("a", "$(b)"), ("b", "")])]);
        for _ in 0..2000 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let idx = (state % alphabet.len() as u64) as usize;
                if let Some(c) = alphabet.get(idx) {
                    s.push(*c);
                }
            }
            let out = expand(&s, &m);
            if !s.contains('$') {
                assert_eq!(out, s);
            }
            // With nothing defined, expansion only ever removes `$` of `$$`.
            let none = |_: &str| None;
            let plain = expand(&s, &none);
            assert_eq!(plain.replace('$', ""), s.replace('$', ""));
        }
    }
}
