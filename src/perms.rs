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
//! Compiled into `podc-pause` too (`#[path]`).

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
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

/// Directories [`remove_tree`] holds open at once: a subtree deeper than
/// this is moved up under the top directory and removed from there.
const REMOVE_DEPTH: usize = 32;

/// Removes `path` and everything under it, like `fs::remove_dir_all`
/// (a symlink is removed, never followed), for trees a container wrote
/// (its writable layer, its emptyDirs): std's removal holds one open
/// directory per level, so a tree deeper than the open-file limit (1024
/// by default), which any container can make, failed the removal half
/// way, and the container could then never start again nor its pod be
/// deleted. Here at most [`REMOVE_DEPTH`] directories are open whatever
/// the depth. And it never empties a mount point met on the way (std
/// would delete whatever a bind mount there shows, host data included):
/// it stops with an error instead.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("removing {}: {e}", path.display()));
    let top = match open_dir_nofollow(rustix::fs::CWD, path) {
        Ok(fd) => fd,
        // A file or a symlink: removed itself.
        Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
            return fs::remove_file(path).map_err(ctx)
        }
        Err(e) => return Err(ctx(e.into())),
    };
    let st = rustix::fs::statx(
        &top,
        "",
        rustix::fs::AtFlags::EMPTY_PATH,
        rustix::fs::StatxFlags::BASIC_STATS,
    )?;
    let mut tree = Tree {
        top: &top,
        dev: (st.stx_dev_major, st.stx_dev_minor),
        moved: 0,
    };
    while tree.empty(&top, 0).map_err(ctx)? {}
    fs::remove_dir(path).map_err(ctx)
}

fn open_dir_nofollow(at: impl AsFd, name: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
}

/// The tree [`remove_tree`] is emptying.
struct Tree<'a> {
    top: &'a OwnedFd,
    /// The top's file system: nothing on another one is touched.
    dev: (u32, u32),
    /// Subtrees moved up so far (their names under the top).
    moved: u64,
}

impl Tree<'_> {
    /// Removes what is in `dir` (`depth` levels under the top); true when
    /// a deep subtree was moved up under the top, which then needs
    /// another pass.
    fn empty(&mut self, dir: &OwnedFd, depth: usize) -> io::Result<bool> {
        use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
        let mut again = false;
        for name in entry_names(dir)? {
            let shown = || name.to_string_lossy().into_owned();
            let st = rustix::fs::statx(
                dir,
                name.as_c_str(),
                AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
                StatxFlags::BASIC_STATS,
            )?;
            if rustix::fs::FileType::from_raw_mode(st.stx_mode.into())
                != rustix::fs::FileType::Directory
            {
                rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty())?;
                continue;
            }
            let mount_root = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
            if mount_root || (st.stx_dev_major, st.stx_dev_minor) != self.dev {
                return Err(io::Error::other(format!(
                    "{} is a mount point: not removing what is mounted there",
                    shown()
                )));
            }
            if depth + 1 >= REMOVE_DEPTH {
                self.move_to_top(dir, &name)?;
                again = true;
                continue;
            }
            let child = open_dir_nofollow(dir, name.as_c_str())?;
            again |= self.empty(&child, depth + 1)?;
            drop(child);
            rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)?;
        }
        Ok(again)
    }

    /// Renames `dir/name` to a fresh name under the top.
    fn move_to_top(&mut self, dir: &OwnedFd, name: &std::ffi::CStr) -> io::Result<()> {
        loop {
            let to = format!(".podc-removing-{}", self.moved);
            self.moved += 1;
            match rustix::fs::renameat_with(
                dir,
                name,
                self.top,
                to.as_str(),
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Err(rustix::io::Errno::EXIST) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }
}

/// The names in `dir`, without `.` and `..`.
fn entry_names(dir: &OwnedFd) -> io::Result<Vec<std::ffi::CString>> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let name = e?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    Ok(names)
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

    #[test]
    fn remove_tree_goes_deeper_than_it_holds_open_and_never_follows_links() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"keep").unwrap();
        let top = t.path().join("top");
        let mut d = top.clone();
        for i in 0..(REMOVE_DEPTH * 3 + 5) {
            d = d.join(if i % 2 == 0 { "d" } else { ".podc-removing-0" });
            fs::create_dir_all(&d).unwrap();
            std::os::unix::fs::symlink(&outside, d.join("link")).unwrap();
            fs::write(d.join("f"), b"x").unwrap();
        }
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"keep");
        // a symlink itself is removed, not followed; a missing path is NotFound
        std::os::unix::fs::symlink(&outside, &top).unwrap();
        remove_tree(&top).unwrap();
        assert!(outside.join("keep").exists() && top.symlink_metadata().is_err());
        let e = remove_tree(&top).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
