//! Image references (`name[:tag][@digest]`) and sha256 digests.
//!
//! Names are normalised the way Kubernetes and Docker read them: a first
//! component without a `.` or `:` (and not `localhost`) is not a registry, so
//! `busybox` means `docker.io/library/busybox:latest`. The store keeps full
//! names, and `familiar()` gives the short form for display.

use anyhow::{bail, Result};
use std::fmt;

/// The registry domain implied by a name without one (reference grammar).
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// A verified-shape sha256 digest, `sha256:<64 lowercase hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            bail!("unsupported digest {s:?}: only sha256 digests are accepted");
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            bail!("malformed digest {s:?}: expected sha256: and 64 lowercase hex digits");
        }
        Ok(Digest(s.to_string()))
    }
    pub fn from_sha256(bytes: &[u8]) -> Digest {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }
    pub fn of_bytes(data: &[u8]) -> Digest {
        use sha2::{Digest as _, Sha256};
        Digest::from_sha256(&Sha256::digest(data))
    }
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (with port), e.g. `docker.io`, `127.0.0.1:5000`.
    pub domain: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut prev_sep = String::new();
    for &ch in b {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            prev_sep.clear();
        } else if ch == b'.' || ch == b'_' || ch == b'-' {
            prev_sep.push(ch as char);
            let ok = prev_sep == "."
                || prev_sep == "_"
                || prev_sep == "__"
                || prev_sep.bytes().all(|x| x == b'-');
            if !ok {
                return false;
            }
        } else {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.' || *c == b'-')
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty()
            || !p.bytes().all(|c| c.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n > 65535)
        {
            return false;
        }
    }
    !host.is_empty()
        && host.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || c == b'.'
                || c == b'-'
                || c == b'['
                || c == b']'
                || c == b':'
        })
}

impl Reference {
    /// Parses and normalises `s`. Errors say what is wrong and what is accepted.
    pub fn parse(s: &str) -> Result<Reference> {
        let err = |why: &str| -> anyhow::Error {
            anyhow::anyhow!(
                "invalid image reference {s:?}: {why} (expected [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST])"
            )
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains whitespace or control characters"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d).map_err(|e| err(&e.to_string()))?)),
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(err(&format!("bad tag {t:?}")));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_domain(first) {
                    return Err(err(&format!("bad registry {first:?}")));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if path.is_empty() {
            return Err(err("empty name"));
        }
        for c in path.split('/') {
            if !valid_component(c) {
                if c.chars().any(|ch| ch.is_ascii_uppercase()) {
                    return Err(err("repository names must be lowercase"));
                }
                return Err(err(&format!("bad name component {c:?}")));
            }
        }
        let repository = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository.len() > 255 {
            return Err(err("name longer than 255 characters"));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// `domain/repository`
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// The full normalised form: `domain/repository[:tag][@digest]`.
    pub fn full(&self) -> String {
        let mut s = self.name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// The short form users type: `busybox:latest` for `docker.io/library/busybox:latest`.
    pub fn familiar(&self) -> String {
        let full = self.full();
        let f = full.strip_prefix("docker.io/").unwrap_or(&full);
        f.strip_prefix("library/").unwrap_or(f).to_string()
    }

    /// Whether the reference names the mutable `latest` tag (or no tag).
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref() == Some("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert!(r.is_latest());
        let r = Reference::parse("team/app:1.2").unwrap();
        assert_eq!(r.full(), "docker.io/team/app:1.2");
        let r = Reference::parse("127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        let r = Reference::parse("localhost/x").unwrap();
        assert_eq!(r.full(), "localhost/x:latest");
        let d = "sha256:".to_string() + &"a".repeat(64);
        let r = Reference::parse(&format!("x@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.unwrap().as_str(), d);
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "a b",
            "x:",
            "x:-bad",
            "a//b",
            "x@sha256:abc",
            "x@md5:00",
            "/abs",
            "a/../b",
        ] {
            let e = Reference::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid image reference"), "{bad}: {e}");
        }
    }

    #[test]
    fn digest_shape() {
        assert!(Digest::parse("sha256:0123").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        let d = Digest::of_bytes(b"");
        assert_eq!(
            d.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.short(), "e3b0c44298fc");
    }
}
