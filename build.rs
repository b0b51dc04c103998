//! Link the helper binary statically: it is bound into container roots
//! (which have no glibc of the host's version, or none at all) and runs once
//! per pod, where a static binary also has the smallest resident set.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
