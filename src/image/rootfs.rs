//! From image to container root filesystem: overlayfs options, the per
//! container writable layer, a systemd `.mount` unit, and lookups in the
//! merged view without mounting it.

use super::store::Image;
use super::unpack::{is_opaque, is_whiteout};
use anyhow::{bail, Result};
use nix::libc;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Longest option string the kernel takes for one mount (one page).
pub const MAX_MOUNT_OPTIONS: usize = 4095;

/// Escapes a path for an overlayfs option value: `\`, `:` and `,` are
/// special to overlayfs' option parser. Control characters are refused.
pub fn overlay_escape(p: &Path) -> Result<String> {
    let Some(s) = p.to_str() else {
        bail!(
            "path {} is not UTF-8; overlayfs options need text",
            p.display()
        )
    };
    if s.chars().any(|c| c.is_control()) {
        bail!("path {s:?} has control characters; it cannot be an overlayfs option");
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// `lowerdir=L1:L2,upperdir=U,workdir=W` for `mount -t overlay`.
/// `lower` is top first, as [`Image::lower_dirs`] returns it.
pub fn overlay_options(lower: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    if lower.is_empty() {
        bail!("an overlay needs at least one lower layer");
    }
    let lowers: Vec<String> = lower
        .iter()
        .map(|p| overlay_escape(p))
        .collect::<Result<_>>()?;
    let s = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        overlay_escape(upper)?,
        overlay_escape(work)?
    );
    if s.len() > MAX_MOUNT_OPTIONS {
        bail!("overlay mount options are {} bytes, more than the kernel's {MAX_MOUNT_OPTIONS}: too many layers ({}) for this store path", s.len(), lower.len());
    }
    Ok(s)
}

/// `systemd-escape --path`: the unit name stem for a path.
pub fn systemd_escape_path(p: &Path) -> String {
    let s = p.as_os_str().as_bytes();
    let trimmed: Vec<&[u8]> = s.split(|b| *b == b'/').filter(|c| !c.is_empty()).collect();
    if trimmed.is_empty() {
        return "-".into();
    }
    let joined = trimmed.join(&b'/');
    let mut out = String::new();
    for (i, &b) in joined.iter().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// A rendered systemd mount unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountUnit {
    /// e.g. `var-lib-podc-pods-web-app-rootfs.mount`
    pub name: String,
    pub text: String,
}

/// One container's root filesystem: the image's read-only layers under the
/// container's own writable layer, mounted at `target`.
#[derive(Debug, Clone)]
pub struct ContainerRootfs {
    /// Top first.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
}

fn is_mountpoint(p: &Path) -> bool {
    match (fs::metadata(p), p.parent().map(fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev() || a.ino() == b.ino(),
        _ => false,
    }
}

impl ContainerRootfs {
    /// Lays the rootfs out in `container_dir` (under the pod's state
    /// directory): `upper/`, `work/` and the mount point `rootfs/`.
    pub fn new(image: &Image, container_dir: &Path) -> ContainerRootfs {
        ContainerRootfs {
            lower: image.lower_dirs(),
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
            target: container_dir.join("rootfs"),
        }
    }

    /// Creates a fresh, empty writable layer (throwing away a previous one:
    /// a recreated pod starts from the image), the mount point, and the
    /// `l/N` links to the layers that the mount options name: the same
    /// layout the joiner makes (`crate::container_root`).
    pub fn prepare(&self) -> Result<()> {
        if is_mountpoint(&self.target) {
            bail!(
                "{} is still mounted; stop the container before recreating its rootfs",
                self.target.display()
            );
        }
        crate::container_root::fresh_layer(&self.dir()?, &self.lower)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The container directory: `target`'s parent, which holds `upper/`,
    /// `work/` and `l/` beside it ([`ContainerRootfs::new`]).
    fn dir(&self) -> Result<PathBuf> {
        let dir = self.target.parent().map(Path::to_path_buf);
        match dir {
            Some(d) if self.upper == d.join("upper") && self.work == d.join("work") => Ok(d),
            _ => bail!(
                "{}: the writable layer must be beside the mount point (upper/, work/)",
                self.target.display()
            ),
        }
    }

    /// The overlayfs mount options.
    pub fn options(&self) -> Result<String> {
        overlay_options(&self.lower, &self.upper, &self.work)
    }

    /// Mounts the overlay at `target` (needs root). The runtime normally lets
    /// systemd do this through [`ContainerRootfs::mount_unit`].
    ///
    /// The options name the layers by short relative paths (`l/0`, `upper`,
    /// `work`, from the container directory; `l/N` are symlinks to the
    /// image's layers), as Docker's overlay2 driver does. The kernel shows
    /// the options as given in `/proc/*/mountinfo`, and systemd rereads the
    /// whole table about twenty times for every sandboxed unit it starts
    /// (and once for every mount event): absolute store paths made each
    /// rootfs line ~400 bytes, and with 50 pods running that reading was
    /// most of the CPU time of starting a container. Short names also keep
    /// images with many layers under the kernel's one-page option limit.
    pub fn mount(&self) -> Result<()> {
        let (dir, opts) = self.mount_options()?;
        let opts = std::ffi::CString::new(opts)?;
        let target = std::ffi::CString::new(self.target.as_os_str().as_bytes())?;
        let cdir = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
        // The relative names resolve against the working directory, which
        // is process-wide: mount from a child so no other thread of the
        // caller sees its directory change. The child only makes raw
        // system calls (nothing allocates after fork).
        // SAFETY: the child calls chdir, mount and _exit, all
        // async-signal-safe, on buffers prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            unsafe {
                let code = if libc::chdir(cdir.as_ptr()) != 0 {
                    100
                } else if libc::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    opts.as_ptr().cast(),
                ) != 0
                {
                    *libc::__errno_location()
                } else {
                    0
                };
                libc::_exit(code.min(255));
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                bail!("waiting for the mount helper: {e}");
            }
        }
        match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
            Some(0) => Ok(()),
            Some(100) => bail!("entering {}", dir.display()),
            Some(errno) => bail!(
                "mounting overlay on {}: {}",
                self.target.display(),
                std::io::Error::from_raw_os_error(errno)
            ),
            None => bail!("the mount helper for {} died", self.target.display()),
        }
    }

    /// The directory that [`ContainerRootfs::mount`] mounts from and its
    /// options relative to it (`lowerdir=l/0:l/1,upperdir=upper,workdir=work`),
    /// as [`ContainerRootfs::prepare`] laid it out.
    pub fn mount_options(&self) -> Result<(PathBuf, String)> {
        let dir = self.dir()?;
        let opts = crate::container_root::overlay_options(&dir)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| {
                anyhow::anyhow!("{}: no layer links; prepare it first", dir.display())
            })?;
        if opts.len() > MAX_MOUNT_OPTIONS {
            bail!(
                "overlay mount options are {} bytes, more than the kernel's {MAX_MOUNT_OPTIONS}: too many layers ({})",
                opts.len(),
                self.lower.len()
            );
        }
        Ok((dir, opts))
    }

    /// Unmounts `target`.
    pub fn unmount(&self) -> Result<()> {
        rustix::mount::unmount(&self.target, rustix::mount::UnmountFlags::empty())
            .map_err(|e| anyhow::anyhow!("unmounting {}: {e}", self.target.display()))
    }

    /// A systemd `.mount` unit for this rootfs, so `systemctl` shows it and
    /// stops (unmounts) it with the container: the container's service gets
    /// `RequiresMountsFor=<target>` or `BindsTo=`/`After=` on `name`.
    pub fn mount_unit(&self, description: &str) -> Result<MountUnit> {
        let target = self
            .target
            .to_str()
            .filter(|t| t.starts_with('/') && !t.chars().any(char::is_control));
        let Some(target) = target else {
            bail!(
                "mount point {} must be an absolute UTF-8 path",
                self.target.display()
            );
        };
        if Path::new(target)
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            bail!("mount point {target} must be a normalised path");
        }
        // `%` starts a systemd specifier in Options=/Description=
        let opts = self.options()?.replace('%', "%%");
        let desc = description.replace('%', "%%").replace('\n', " ");
        let name = format!("{}.mount", systemd_escape_path(&self.target));
        let text = format!(
            "[Unit]\nDescription={desc}\nDefaultDependencies=no\nConflicts=umount.target\nBefore=umount.target\n\n[Mount]\nWhat=overlay\nWhere={target}\nType=overlay\nOptions={opts}\n"
        );
        Ok(MountUnit { name, text })
    }
}

/// What a path is in the merged view of an image's layers.
#[derive(Debug)]
pub struct MergedEntry {
    /// Path inside the rootfs, absolute, symlinks resolved.
    pub path: String,
    /// The file in the layer that provides it.
    pub layer_path: PathBuf,
    pub metadata: fs::Metadata,
}

/// `lstat` in the merged view of `lower` (top first): the topmost layer
/// entry that no higher whiteout, opaque directory or non-directory hides.
fn merged_lstat(lower: &[PathBuf], rel: &[String]) -> Option<(PathBuf, fs::Metadata)> {
    for layer in lower {
        let mut p = layer.clone();
        let mut stop_after = false;
        let mut hidden = false;
        for (i, c) in rel.iter().enumerate() {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if is_whiteout(&m) => {
                    hidden = true;
                    break;
                }
                Ok(m) if i + 1 == rel.len() => return Some((p, m)),
                Ok(m) if m.is_dir() => {
                    if is_opaque(&p) {
                        stop_after = true;
                    }
                }
                Ok(_) => {
                    hidden = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if hidden || stop_after {
            return None;
        }
    }
    None
}

/// Resolves `path` inside the merged view, following symlinks as a chroot
/// would (absolute targets restart at the rootfs root; `..` stops at it).
pub fn resolve_in_layers(lower: &[PathBuf], path: &str) -> Option<MergedEntry> {
    let mut todo: Vec<String> = path
        .split('/')
        .rev()
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    let mut last = None;
    while let Some(c) = todo.pop() {
        if c == "." {
            continue;
        }
        if c == ".." {
            cur.pop();
            continue;
        }
        cur.push(c);
        let (lp, m) = merged_lstat(lower, &cur)?;
        if m.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let t = fs::read_link(&lp).ok()?;
            let t = t.to_str()?;
            cur.pop();
            if t.starts_with('/') {
                cur.clear();
            }
            todo.extend(
                t.split('/')
                    .rev()
                    .filter(|c| !c.is_empty())
                    .map(String::from),
            );
            last = None;
            continue;
        }
        last = Some((lp, m));
    }
    let (layer_path, metadata) = match last {
        Some(l) => l,
        None if cur.is_empty() => {
            let p = lower.first()?.clone();
            let m = fs::metadata(&p).ok()?;
            (p, m)
        }
        None => return None,
    };
    Some(MergedEntry {
        path: format!("/{}", cur.join("/")),
        layer_path,
        metadata,
    })
}

impl Image {
    /// Finds `command` the way the container will: a name without `/` is
    /// looked up in `path` (a PATH value) inside the image's merged layers.
    /// Returns the absolute path inside the rootfs of an executable file.
    pub fn find_executable(&self, command: &str, path: &str) -> Option<String> {
        let lower = self.lower_dirs();
        let exec =
            |e: &MergedEntry| e.metadata.is_file() && e.metadata.permissions().mode() & 0o111 != 0;
        if command.contains('/') {
            let p = if command.starts_with('/') {
                command.to_string()
            } else {
                format!("/{command}")
            };
            return resolve_in_layers(&lower, &p).filter(exec).map(|_| p);
        }
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{command}", d.trim_end_matches('/')))
            .find(|p| resolve_in_layers(&lower, p).is_some_and(|e| exec(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_overlay_specials() {
        assert_eq!(
            overlay_escape(Path::new("/a:b,c\\d")).unwrap(),
            "/a\\:b\\,c\\\\d"
        );
        assert!(overlay_escape(Path::new("/a\nb")).is_err());
        let o = overlay_options(
            &[PathBuf::from("/l2"), PathBuf::from("/l:1")],
            Path::new("/u"),
            Path::new("/w"),
        )
        .unwrap();
        assert_eq!(o, "lowerdir=/l2:/l\\:1,upperdir=/u,workdir=/w");
        assert!(overlay_options(&[], Path::new("/u"), Path::new("/w")).is_err());
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/{}/{i}", "x".repeat(60))))
            .collect();
        assert!(overlay_options(&many, Path::new("/u"), Path::new("/w"))
            .unwrap_err()
            .to_string()
            .contains("too many layers"));
    }

    #[test]
    fn systemd_path_escaping() {
        assert_eq!(
            systemd_escape_path(Path::new("/var/lib/podc/pods/web-1/app/rootfs")),
            "var-lib-podc-pods-web\\x2d1-app-rootfs"
        );
        assert_eq!(systemd_escape_path(Path::new("/")), "-");
        assert_eq!(
            systemd_escape_path(Path::new("/.hidden/a b")),
            "\\x2ehidden-a\\x20b"
        );
    }

    #[test]
    fn mount_unit_text() {
        let r = ContainerRootfs {
            lower: vec![PathBuf::from("/s/l2"), PathBuf::from("/s/l1")],
            upper: PathBuf::from("/p/c/upper"),
            work: PathBuf::from("/p/c/work"),
            target: PathBuf::from("/p/c/rootfs"),
        };
        let u = r.mount_unit("rootfs of 100%").unwrap();
        assert_eq!(u.name, "p-c-rootfs.mount");
        assert!(u
            .text
            .contains("Options=lowerdir=/s/l2:/s/l1,upperdir=/p/c/upper,workdir=/p/c/work\n"));
        assert!(u.text.contains("Description=rootfs of 100%%\n"));
        assert!(u.text.contains("Where=/p/c/rootfs\n"));
    }
}
