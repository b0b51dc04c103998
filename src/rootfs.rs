//! `podc rootfs mount|umount`, called by container units
//! (`ExecStartPre=+`, `ExecStopPost=+`).
//!
//! Until the image store is wired in, `mount` accepts a container directory
//! whose `rootfs/` was provisioned beforehand (a plain tree, e.g. the tests'
//! busybox roots) and fails clearly otherwise; `umount` unmounts `rootfs/`
//! when something is mounted there and is a no-op otherwise.

use std::path::Path;

pub fn mount(dir: &Path, image: &str) -> Result<(), String> {
    let root = dir.join("rootfs");
    let populated = std::fs::read_dir(&root)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if populated {
        return Ok(());
    }
    Err(format!(
        "{}: no root filesystem for image {image} (the image store is not available in this build; provision the directory first)",
        root.display()
    ))
}

pub fn umount(dir: &Path) -> Result<(), String> {
    let root = dir.join("rootfs");
    let canon = std::fs::canonicalize(&root).unwrap_or(root);
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let target = canon.to_string_lossy();
    if info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == target)
    {
        nix::mount::umount2(&canon, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmounting {target}: {e}"))?;
    }
    Ok(())
}
