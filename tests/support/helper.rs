//! A statically linked `podc-pause` for tests.
//!
//! The joiner runs inside container roots (a busybox tree without glibc), so
//! it has to be static. A build script cannot make one binary of a crate
//! static: `cargo:rustc-link-arg-bin=podc-pause=-static` (or `-static-pie`)
//! still gets rustc's `-Wl,-Bdynamic -lgcc_s -lc` and yields a dynamically
//! linked (or crashing) file — tested. What works is rustc's
//! `-C target-feature=+crt-static` for that one binary:
//! `cargo rustc --bin podc-pause -- -C target-feature=+crt-static`.
//! Tests run that once in the same target directory, which reuses every
//! already built dependency (a separate target directory rebuilt the whole
//! tree: 112 s cold versus ~7 s), and copy the result to
//! `<target>/static-helper/podc-pause`, under a lock because several tests
//! may ask at once. `cargo test` does not hold the build lock while tests
//! run, so the nested cargo does not block. The next `cargo build` relinks
//! the normal (dynamic) binary. `PODC_PAUSE_STATIC=/path` skips all this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// True when `path` is an ELF file without a program interpreter (static or
/// static-pie): it runs in any root.
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) != 3
        // PT_INTERP
    })
}

/// Path of a statically linked `podc-pause`, building it if needed.
pub fn static_podc_pause() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("PODC_PAUSE_STATIC") {
            return PathBuf::from(p);
        }
        let dynamic = PathBuf::from(env!("CARGO_BIN_EXE_podc-pause"));
        if is_static_elf(&dynamic) {
            return dynamic;
        }
        // <target>/debug/podc-pause -> <target>, <target>/static-helper
        let target = dynamic.parent().and_then(Path::parent).expect("target dir");
        let dir = target.join("static-helper");
        std::fs::create_dir_all(&dir).expect("create static-helper dir");
        let lock = std::fs::File::create(dir.join("lock")).expect("lock file");
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("flock");
        let status = Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["rustc", "--quiet", "--bin", "podc-pause", "--target-dir"])
            .arg(target)
            .args(["--", "-C", "target-feature=+crt-static"])
            .status()
            .expect("run cargo rustc");
        assert!(status.success(), "building a static podc-pause failed");
        let out = dir.join("podc-pause");
        std::fs::copy(&dynamic, &out).expect("copy static podc-pause");
        assert!(is_static_elf(&out), "{} is not static", out.display());
        out
    })
    .clone()
}
