//! Image user names (`User: nginx`, `1000:staff`) to numeric ids, from the
//! image's own `/etc/passwd` and `/etc/group`, read through its unpacked
//! layers as overlayfs would show them, as container runtimes resolve them
//! inside the container's root.
//!
//! The layers are untrusted: no symlink is followed (a layer's `etc` or
//! `etc/passwd` that is a symlink could point anywhere on the host), a
//! whiteout or an opaque directory hides the lower layers, and a file is
//! read only up to [`MAX_FILE`] bytes.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Larger passwd/group files are not read.
pub const MAX_FILE: u64 = 4 << 20;

/// The contents of `rel` (e.g. `etc/passwd`) in the image whose layers are
/// `lower` (top first), or `None` when the image has no such regular file.
pub fn read_layered(lower: &[PathBuf], rel: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let (file, dirs) = parts.split_last()?;
    'layers: for layer in lower {
        let mut p = layer.clone();
        let mut opaque = false;
        for d in dirs {
            p.push(d);
            match std::fs::symlink_metadata(&p) {
                Err(_) => continue 'layers, // not in this layer
                Ok(m) if m.is_dir() => opaque |= is_opaque(&p),
                // A whiteout, a file or a symlink replaces the directory.
                Ok(_) => return None,
            }
        }
        p.push(file);
        match std::fs::symlink_metadata(&p) {
            Err(_) if opaque => return None,
            Err(_) => continue,
            Ok(m) if m.is_file() => {
                let f = std::fs::File::open(&p).ok()?;
                let mut buf = Vec::new();
                f.take(MAX_FILE).read_to_end(&mut buf).ok()?;
                return Some(buf);
            }
            Ok(m) if m.file_type().is_char_device() => return None, // whiteout
            Ok(_) => return None,
        }
    }
    None
}

fn is_opaque(p: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(p, super::unpack::OPAQUE_XATTR, &mut v),
        Ok(1) if v[0] == b'y'
    )
}

/// The entry of `name` in a passwd/group-format file: its third field
/// (uid or gid) and, for passwd, the fourth (the primary gid).
fn lookup(file: &[u8], name: &str) -> Option<(u32, Option<u32>)> {
    String::from_utf8_lossy(file).lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| {
            let id = f[2].parse().ok()?;
            Some((id, f.get(3).and_then(|g| g.parse().ok())))
        })?
    })
}

/// Resolve an image's `User` (`user`, `user:group`, names or numbers) to
/// `uid[:gid]` in numbers, as runc does inside the container: a user name
/// gives its uid and, without a group, its primary gid from `/etc/passwd`;
/// a group name its gid from `/etc/group`. Numeric parts stay as they are.
/// `Err` names what could not be found.
pub fn resolve_user(lower: &[PathBuf], user: &str) -> Result<String, String> {
    let numeric = |s: &str| s.parse::<u32>().is_ok();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if numeric(u) && g.is_none_or(numeric) {
        return Ok(user.to_string());
    }
    let (uid, primary) = if numeric(u) {
        (u.to_string(), None)
    } else {
        let passwd = read_layered(lower, "etc/passwd")
            .ok_or_else(|| format!("user \"{u}\": the image has no /etc/passwd"))?;
        let (uid, gid) = lookup(&passwd, u)
            .ok_or_else(|| format!("user \"{u}\" is not in the image's /etc/passwd"))?;
        (uid.to_string(), gid)
    };
    let gid = match g {
        None => primary.map(|g| g.to_string()),
        Some(g) if numeric(g) => Some(g.to_string()),
        Some(g) => {
            let group = read_layered(lower, "etc/group")
                .ok_or_else(|| format!("group \"{g}\": the image has no /etc/group"))?;
            let (gid, _) = lookup(&group, g)
                .ok_or_else(|| format!("group \"{g}\" is not in the image's /etc/group"))?;
            Some(gid.to_string())
        }
    };
    Ok(match gid {
        Some(g) => format!("{uid}:{g}"),
        None => uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = root.join(name);
        for (p, content) in files {
            let f = d.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, content).unwrap();
        }
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_resolve_through_layers_top_first() {
        let t = tempfile::tempdir().unwrap();
        let base = layer(
            t.path(),
            "base",
            &[
                (
                    "etc/passwd",
                    "root:x:0:0::/root:/bin/sh\nold:x:5:5::/:/bin/sh\n",
                ),
                ("etc/group", "root:x:0:\nstaff:x:50:\n"),
            ],
        );
        let top = layer(
            t.path(),
            "top",
            &[(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nnginx:x:101:102::/:/bin/false\n",
            )],
        );
        let lower = vec![top, base];
        assert_eq!(resolve_user(&lower, "nginx").unwrap(), "101:102");
        assert_eq!(resolve_user(&lower, "nginx:staff").unwrap(), "101:50");
        assert_eq!(resolve_user(&lower, "1000:staff").unwrap(), "1000:50");
        assert_eq!(resolve_user(&lower, "nginx:7").unwrap(), "101:7");
        assert_eq!(resolve_user(&lower, "1000:7").unwrap(), "1000:7");
        assert_eq!(resolve_user(&lower, "root").unwrap(), "0:0");
        // The top layer's passwd hides the base one.
        assert!(resolve_user(&lower, "old")
            .unwrap_err()
            .contains("not in the image's /etc/passwd"));
        assert!(resolve_user(&lower, "1:wheel")
            .unwrap_err()
            .contains("group \"wheel\""));
        assert!(resolve_user(&[], "nginx")
            .unwrap_err()
            .contains("no /etc/passwd"));
    }

    #[test]
    fn symlinks_in_layers_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = layer(t.path(), "host", &[("passwd", "evil:x:7:7::/:/bin/sh\n")]);
        let l1 = t.path().join("l1");
        std::fs::create_dir_all(&l1).unwrap();
        std::os::unix::fs::symlink(&outside, l1.join("etc")).unwrap();
        assert_eq!(read_layered(std::slice::from_ref(&l1), "etc/passwd"), None);
        let l2 = t.path().join("l2");
        std::fs::create_dir_all(l2.join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.join("passwd"), l2.join("etc/passwd")).unwrap();
        assert_eq!(read_layered(&[l2], "etc/passwd"), None);
    }
}
