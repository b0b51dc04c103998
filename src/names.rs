//! Kubernetes name and path validation.
//!
//! A manifest that Kubernetes would reject must be rejected by podc too, and
//! with the words users already know from `kubectl apply`: the rules and the
//! messages here follow `k8s.io/apimachinery/pkg/util/validation` (and, for
//! paths, `validateLocalDescendingPath`/`validateLocalNonReservedPath` of
//! `pkg/apis/core/validation`). Where Kubernetes reports several problems for
//! one value they are joined with `"; "`, in Kubernetes' order.
//!
//! The checks are written by hand instead of with regular expressions so the
//! crate stays free of a regex dependency; each function names the pattern
//! it implements, and the tests pin both acceptance and wording.
//!
//! All functions work on bytes and accept only ASCII where Kubernetes does,
//! so any non-ASCII input is rejected (never panics).

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
/// Longest RFC 1123 label Kubernetes accepts (DNS label limit).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;

const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
/// Longest RFC 1123 subdomain Kubernetes accepts (DNS name limit).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_ERR: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";

const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX_LENGTH: usize = 63;

const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// Longest label value Kubernetes accepts.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;

/// Kubernetes' `MaxLenError`.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Kubernetes' `RegexError`: the message, the examples and the pattern.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(e);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn result(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
fn matches_label(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && s.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// `^label(\.label)*$`
fn matches_subdomain(s: &[u8]) -> bool {
    s.split(|&b| b == b'.').all(matches_label)
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_qualified_name(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && s.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Kubernetes' `hasChDirPrefix`: names that would be confused with `.`/`..`
/// when used as file names (config keys and env names become file names in
/// projected volumes).
fn ch_dir_prefix_errors(value: &str) -> Option<String> {
    if value == "." {
        Some("must not be '.'".to_string())
    } else if value == ".." {
        Some("must not be '..'".to_string())
    } else if value.starts_with("..") {
        Some("must not start with '..'".to_string())
    } else {
        None
    }
}

/// Kubernetes' `IsDNS1123Label`: object names such as container names and
/// port names, at most 63 characters of `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_label(s.as_bytes()) {
        if matches_subdomain(s.as_bytes()) {
            // A valid subdomain but not a label: the length was checked
            // above, so the problem must be the dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    result(errs)
}

/// Kubernetes' `IsDNS1123Subdomain`: names of most objects (Pods,
/// ConfigMaps, Secrets), at most 253 characters of dot-separated labels.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_subdomain(s.as_bytes()) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    result(errs)
}

/// Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`,
/// `..` or starting with `..`.
///
/// Note for rendering: systemd's `Environment=` is stricter (letters, digits
/// and `_`, not starting with a digit), so a name valid here may still need
/// another way into the process; see `escape::env_assignment`.
pub fn env_var_name(s: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    let b = s.as_bytes();
    let ok = match b.first() {
        Some(&first) => {
            (first.is_ascii_alphabetic() || matches!(first, b'-' | b'.' | b'_'))
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        }
        None => false,
    };
    if !ok {
        errs.push(regex_error(
            ENV_VAR_NAME_ERR,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(ch_dir_prefix_errors(s));
    result(errs)
}

/// Kubernetes' `IsConfigMapKey` (also used for Secret keys): at most 253
/// characters of `[-._a-zA-Z0-9]+`, and not `.`, `..` or starting with `..`,
/// because keys become file names in volumes.
pub fn config_map_key(s: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(ch_dir_prefix_errors(s));
    result(errs)
}

/// Kubernetes' `IsQualifiedName`, the rule for label and annotation keys:
/// an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters of `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if let Err(e) = dns1123_subdomain(prefix) {
                // Kubernetes prefixes each message; they are joined by "; ".
                for m in e.split("; ") {
                    errs.push(format!("prefix part {m}"));
                }
            }
            *name
        }
        _ => {
            return Err(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name(name.as_bytes()) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    result(errs)
}

/// Kubernetes' `IsValidLabelValue`: empty, or at most 63 characters of
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
pub fn label_value(s: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !s.is_empty() && !matches_qualified_name(s.as_bytes()) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    result(errs)
}

/// Kubernetes' `validateLocalDescendingPath`, the rule for
/// `volumeMounts[].subPath`: not absolute and no `..` component, so the
/// path cannot climb out of the volume. Empty is accepted (it means "no
/// subPath").
pub fn local_descending_path(p: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push("must be a relative path".to_string());
    }
    if p.split('/').any(|c| c == "..") {
        // Even for `../../..`, one error is enough to make the point.
        errs.push("must not contain '..'".to_string());
    }
    result(errs)
}

/// Kubernetes' rule for `items[].path` of ConfigMap, Secret, downwardAPI and
/// projected volumes (`KeyToPath` validation + `validateLocalNonReservedPath`):
/// required, relative, no `..` component, and not starting with `..`
/// (names like `..data` are reserved for the atomic writer's own links).
pub fn relative_path_no_dotdot(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("Required value".to_string());
    }
    let mut errs = Vec::new();
    if let Err(e) = local_descending_path(p) {
        errs.push(e);
    }
    // Don't report this if the `..` component check already caught it.
    if p.starts_with("..") && !p.starts_with("../") {
        errs.push("must not start with '..'".to_string());
    }
    result(errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    #[test]
    fn label_accepts() {
        for s in [
            "a",
            "ab",
            "abc",
            "a1",
            "a-1",
            "a--1--2--b",
            "0",
            "01",
            "0-1",
            "1-0",
            "123-abc",
            &"a".repeat(63),
        ] {
            assert_eq!(dns1123_label(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn label_rejects() {
        for s in [
            "", "A", "ABC", "aBc", "A1", "a-1-", "-a", "a-", "_a", "a_b", "a b", "a@b", "é", "a\n",
            "a\0",
        ] {
            assert_eq!(dns1123_label(s), Err(LABEL_MSG.to_string()), "{s:?}");
        }
    }

    #[test]
    fn label_wording_matches_kubernetes() {
        // Exact RegexError output, including its double space before "or".
        assert_eq!(
            dns1123_label("My_Name").unwrap_err(),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
        assert_eq!(dns1123_label("a.b").unwrap_err(), "must not contain dots");
        assert_eq!(
            dns1123_label(&"a".repeat(64)).unwrap_err(),
            "must be no more than 63 characters"
        );
        assert_eq!(
            dns1123_label(&"A".repeat(64)).unwrap_err(),
            format!("must be no more than 63 characters; {LABEL_MSG}")
        );
    }

    #[test]
    fn subdomain() {
        for s in [
            "a",
            "a.b",
            "a.b.c",
            "1.2.3.4",
            "a-1.b-2",
            "example.com",
            &"a".repeat(253),
            &format!("{}.{}", "a".repeat(63), "b".repeat(63)),
        ] {
            assert_eq!(dns1123_subdomain(s), Ok(()), "{s:?}");
        }
        let msg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        for s in [
            "", ".", "a.", ".a", "a..b", "a.-b", "a-.b", "A.b", "a_b", "a/b",
        ] {
            assert_eq!(dns1123_subdomain(s), Err(msg.to_string()), "{s:?}");
        }
        assert_eq!(
            dns1123_subdomain(&"a".repeat(254)).unwrap_err(),
            "must be no more than 253 characters"
        );
    }

    #[test]
    fn env_var_names() {
        for s in [
            "A",
            "a",
            "_",
            "-",
            ".a",
            "A_B",
            "my.env-name",
            "MY_ENV.NAME",
            "MyEnvName1",
            "a1",
            "-1",
            "._",
        ] {
            assert_eq!(env_var_name(s), Ok(()), "{s:?}");
        }
        let msg = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
        for s in ["", "1", "1a", "a b", "a=b", "a$", "é", "a\n"] {
            assert_eq!(env_var_name(s), Err(msg.to_string()), "{s:?}");
        }
        assert_eq!(env_var_name(".").unwrap_err(), "must not be '.'");
        assert_eq!(env_var_name("..").unwrap_err(), "must not be '..'");
        assert_eq!(env_var_name("..a").unwrap_err(), "must not start with '..'");
        assert_eq!(
            env_var_name("..=").unwrap_err(),
            format!("{msg}; must not start with '..'")
        );
    }

    #[test]
    fn config_map_keys() {
        for s in [
            "a", "A", "1", "key.name", "KEY_NAME", "key-name", ".a", "a..b", "-", "_",
        ] {
            assert_eq!(config_map_key(s), Ok(()), "{s:?}");
        }
        assert_eq!(config_map_key(&"a".repeat(253)), Ok(()));
        let msg = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
        for s in ["", "a/b", "a b", "a:b", "é", "a\0"] {
            assert_eq!(config_map_key(s), Err(msg.to_string()), "{s:?}");
        }
        assert_eq!(config_map_key(".").unwrap_err(), "must not be '.'");
        assert_eq!(config_map_key("..").unwrap_err(), "must not be '..'");
        assert_eq!(
            config_map_key("..data").unwrap_err(),
            "must not start with '..'"
        );
        assert_eq!(
            config_map_key(&"a".repeat(254)).unwrap_err(),
            "must be no more than 253 characters"
        );
    }

    #[test]
    fn qualified_names() {
        for s in [
            "a",
            "A",
            "1",
            "MyName",
            "my.name",
            "123-abc",
            "a_b",
            "a-b.c_D",
            "example.com/MyName",
            "app.kubernetes.io/name",
            "k/v",
            &"a".repeat(63),
            &format!("{}/{}", "a".repeat(253), "b".repeat(63)),
        ] {
            assert_eq!(qualified_name(s), Ok(()), "{s:?}");
        }
        let name_msg = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        for s in ["-a", "a-", "_a", "a.", "a b", "a:b", "é", "x/-a"] {
            assert_eq!(qualified_name(s), Err(name_msg.to_string()), "{s:?}");
        }
        assert_eq!(
            qualified_name("").unwrap_err(),
            format!("name part must be non-empty; {name_msg}")
        );
        assert_eq!(
            qualified_name("a/").unwrap_err(),
            format!("name part must be non-empty; {name_msg}")
        );
        assert_eq!(
            qualified_name(&"a".repeat(64)).unwrap_err(),
            "name part must be no more than 63 characters"
        );
        assert_eq!(
            qualified_name("/a").unwrap_err(),
            "prefix part must be non-empty"
        );
        assert!(qualified_name("Example.com/a")
            .unwrap_err()
            .starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert_eq!(
            qualified_name("a/b/c").unwrap_err(),
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
    }

    #[test]
    fn label_values() {
        for s in [
            "",
            "a",
            "MyValue",
            "my_value",
            "12345",
            "a.b-c_d",
            &"a".repeat(63),
        ] {
            assert_eq!(label_value(s), Ok(()), "{s:?}");
        }
        let msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        for s in ["-", "a-", ".a", "a b", "a/b", "é"] {
            assert_eq!(label_value(s), Err(msg.to_string()), "{s:?}");
        }
        assert_eq!(
            label_value(&"a".repeat(64)).unwrap_err(),
            "must be no more than 63 characters"
        );
    }

    #[test]
    fn sub_paths() {
        for p in [
            "", "a", "a/b", "a/./b", "a..", "..a", "a/..b", "a/b..", ".", "./a", "a//b",
        ] {
            assert_eq!(local_descending_path(p), Ok(()), "{p:?}");
        }
        assert_eq!(
            local_descending_path("/a").unwrap_err(),
            "must be a relative path"
        );
        assert_eq!(
            local_descending_path("..").unwrap_err(),
            "must not contain '..'"
        );
        assert_eq!(
            local_descending_path("a/../b").unwrap_err(),
            "must not contain '..'"
        );
        assert_eq!(
            local_descending_path("a/..").unwrap_err(),
            "must not contain '..'"
        );
        assert_eq!(
            local_descending_path("../../..").unwrap_err(),
            "must not contain '..'"
        );
        assert_eq!(
            local_descending_path("/../a").unwrap_err(),
            "must be a relative path; must not contain '..'"
        );
    }

    #[test]
    fn item_paths() {
        for p in ["a", "a/b", "a..", "a/..b", "dir/file.conf", "./a", "a/"] {
            assert_eq!(relative_path_no_dotdot(p), Ok(()), "{p:?}");
        }
        assert_eq!(relative_path_no_dotdot("").unwrap_err(), "Required value");
        assert_eq!(
            relative_path_no_dotdot("/etc/passwd").unwrap_err(),
            "must be a relative path"
        );
        assert_eq!(
            relative_path_no_dotdot("..").unwrap_err(),
            "must not contain '..'; must not start with '..'"
        );
        assert_eq!(
            relative_path_no_dotdot("../a").unwrap_err(),
            "must not contain '..'"
        );
        assert_eq!(
            relative_path_no_dotdot("a/../b").unwrap_err(),
            "must not contain '..'"
        );
        assert_eq!(
            relative_path_no_dotdot("..data").unwrap_err(),
            "must not start with '..'"
        );
        assert_eq!(
            relative_path_no_dotdot("..a/b").unwrap_err(),
            "must not start with '..'"
        );
    }
}
