//! `podc rootfs prepare|mount|umount` with a container's directory
//! `<root>/pods/<id>/containers/<name>`.
//!
//! `prepare` is what pods use (the infra unit's `ExecStartPre=`, once for
//! all containers of the pod): it lays out a fresh writable layer and links
//! to the image's layers, which the joiner mounts inside the container's
//! own mount namespace ([`crate::container_root`]), so no container root
//! is ever mounted on the host. `mount` and `umount` mount on the host, for
//! units of older podc versions and for inspection by hand.
//!
//! `mount` gives the container a fresh writable layer over its image's
//! layers (overlayfs, [`crate::image::ContainerRootfs`]) at `rootfs/`: a
//! restarted container starts from the image, as in Kubernetes. The image
//! must be in the store (`podc image import|pull`). A `rootfs/` that is a
//! plain populated directory (no `upper/` beside it) was provisioned by
//! hand and is used as it is. `umount` unmounts `rootfs/` if something is
//! mounted there.

use crate::image::{ContainerRootfs, Store};
use std::path::{Path, PathBuf};

fn is_mounted(p: &Path) -> bool {
    let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let target = canon.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .any(|m| m == target)
        })
        .unwrap_or(false)
}

/// The state root of a container directory `<root>/pods/<id>/containers/<c>`.
fn state_root(dir: &Path) -> Option<PathBuf> {
    let c = dir.parent()?;
    let pod = c.parent()?;
    let pods = pod.parent()?;
    (c.file_name()? == "containers" && pods.file_name()? == "pods")
        .then(|| pods.parent().map(Path::to_path_buf))
        .flatten()
}

pub fn mount(dir: &Path, image: &str, fallback_root: &Path) -> Result<(), String> {
    mount_all(&[(dir.to_path_buf(), image.to_string())], fallback_root)
}

/// [`mount`] for several containers (a pod's), opening the store once and
/// reading the mount table once.
pub fn mount_all(containers: &[(PathBuf, String)], fallback_root: &Path) -> Result<(), String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounted: std::collections::HashSet<&str> =
        info.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    let mut store: Option<Store> = None;
    for (dir, image) in containers {
        let target = dir.join("rootfs");
        let canon = std::fs::canonicalize(&target).unwrap_or_else(|_| target.clone());
        if mounted.contains(canon.to_string_lossy().as_ref()) {
            continue;
        }
        mount_one(dir, image, fallback_root, &mut store)?;
    }
    Ok(())
}

/// [`prepare`](self) for a pod's containers, opening the store once.
pub fn prepare_all(containers: &[(PathBuf, String)], fallback_root: &Path) -> Result<(), String> {
    let mut store: Option<Store> = None;
    for (dir, image) in containers {
        if let Some(r) = container_rootfs(dir, image, fallback_root, &mut store)? {
            r.prepare().map_err(|e| format!("{e:#}"))?;
        }
    }
    Ok(())
}

fn mount_one(
    dir: &Path,
    image: &str,
    fallback_root: &Path,
    store: &mut Option<Store>,
) -> Result<(), String> {
    match container_rootfs(dir, image, fallback_root, store)? {
        Some(r) => {
            r.prepare().map_err(|e| format!("{e:#}"))?;
            r.mount().map_err(|e| format!("{e:#}"))
        }
        None => Ok(()),
    }
}

/// The rootfs of the container in `dir` from `image` in the store, or
/// `None` for a `rootfs/` provisioned by hand (a populated directory with
/// no writable layer beside it), which is used as it is.
fn container_rootfs(
    dir: &Path,
    image: &str,
    fallback_root: &Path,
    store: &mut Option<Store>,
) -> Result<Option<ContainerRootfs>, String> {
    let target = dir.join("rootfs");
    let provisioned = !dir.join("upper").exists()
        && std::fs::read_dir(&target)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
    if provisioned {
        return Ok(None);
    }
    let root = state_root(dir).unwrap_or_else(|| fallback_root.to_path_buf());
    if store.as_ref().is_none_or(|s| s.state_root() != root) {
        *store = Some(
            Store::open(&root).map_err(|e| format!("image store in {}: {e:#}", root.display()))?,
        );
    }
    let Some(store) = store.as_ref() else {
        return Err("no image store".into());
    };
    let img = store
        .resolve(image)
        .map_err(|e| format!("{image}: {e:#}"))?
        .ok_or_else(|| {
            format!("ErrImageNeverPull: image {image} is not in the local store (podc image pull {image}, or podc image import)")
        })?;
    Ok(Some(ContainerRootfs::new(&img, dir)))
}

pub fn umount(dir: &Path) -> Result<(), String> {
    let root = dir.join("rootfs");
    if is_mounted(&root) {
        nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmounting {}: {e}", root.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_from_container_dir() {
        assert_eq!(
            state_root(Path::new("/var/lib/podc/pods/default_p/containers/app")),
            Some(PathBuf::from("/var/lib/podc"))
        );
        assert_eq!(state_root(Path::new("/x/y")), None);
    }
}
