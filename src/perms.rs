//! Root-only directories: the trees podc owns on the host.
//!
//! Other local users are not trusted (design §7). The image store holds
//! layers exactly as images ship them (setuid-root binaries, 0666 device
//! nodes), a container's writable layer holds whatever the container made
//! there, and pod state holds secrets. A user who can walk to any of these
//! can exec the setuid binary or open the device on the host. So the state
//! root, the image store, the pods' state, the runtime root and each pod's
//! runtime directory are 0700 and root's, and nothing below them needs to
//! be reachable by anyone else: a container sees its root (an overlay or a
//! bind mount), its volumes and the pod's files through mounts that root
//! made before the container dropped its privileges, never through the
//! host path to them.
//!
//! Compiled into `podc-pause` too (`#[path]`): std only.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every directory podc keeps private.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Makes `dir` a root-only directory: creates it, and any missing parent,
/// 0700; refuses a symlink or a non-directory; gives it to root when podc
/// runs as root; and tightens its mode to 0700, so a tree an older podc
/// made 0755 becomes private the first time it is used. Parents that
/// exist are left alone (they may be shared, like `/run` or `/var/lib`).
pub fn private_dir(dir: &Path) -> io::Result<()> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(ctx)?;
    // Work on the opened directory: what is checked is what is changed.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) | Some(nix::libc::ENOTDIR) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory (a symlink?)", dir.display()),
            ),
            _ => ctx(e),
        })?;
    let m = f.metadata().map_err(ctx)?;
    // SAFETY: geteuid cannot fail and touches no memory.
    if m.uid() != 0 && unsafe { nix::libc::geteuid() } == 0 {
        std::os::unix::fs::fchown(&f, Some(0), Some(0)).map_err(ctx)?;
    }
    if m.mode() & 0o7777 != PRIVATE_DIR_MODE {
        f.set_permissions(fs::Permissions::from_mode(PRIVATE_DIR_MODE))
            .map_err(ctx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_missing_parents_private_and_tightens_loose_dirs() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        // an existing install made by an older podc
        fs::set_permissions(&d, fs::Permissions::from_mode(0o4777)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        // an existing parent is not podc's to change
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&t.path().join("c")).unwrap();
        assert_eq!(mode(t.path()), 0o755);
    }

    #[test]
    fn refuses_symlinks_and_files() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("elsewhere");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&target, t.path().join("link")).unwrap();
        assert!(private_dir(&t.path().join("link")).is_err());
        assert_eq!(mode(&target), 0o755, "the symlink's target is untouched");
        fs::write(t.path().join("file"), b"").unwrap();
        assert!(private_dir(&t.path().join("file")).is_err());
    }
}
