//! Host-side helpers that run as root for a container (the joiner's fresh
//! writable layer, volume setup/teardown, `podc delete`, the OOM check)
//! against what a hostile, non-privileged container left behind: symlinks
//! to host directories, FIFOs, device nodes, names with newlines, and
//! trees deeper than a process may hold directories open. After each case
//! the host is checked: a marker directory the planted links point at is
//! unchanged (listing, modes, owners, mtimes, contents) and nothing of the
//! pod is left.
mod support;

use support::podc::{pod_yaml, Podc};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MARKER: &str = "/srv/host-marker";

/// A host directory for planted links to point at.
fn make_marker(p: &Podc) {
    p.sd.sh_ok(&format!(
        "mkdir -p {MARKER}/sub && echo keep > {MARKER}/file && echo deep > {MARKER}/sub/f \
         && chmod 0751 {MARKER}/sub && chmod 0640 {MARKER}/file"
    ));
}

/// Everything observable about the marker directory.
fn marker_state(p: &Podc) -> String {
    p.sd.sh_ok(&format!(
        "cd {MARKER} && find . -printf '%p %y %m %u %g %s %T@\\n' | sort && cat file sub/f"
    ))
}

/// Shell (busybox) that fills directory `$1` with what a hostile root
/// container can make: links to the host marker and to `/`, a FIFO, a
/// device node (CAP_MKNOD is a default capability), a name with a newline,
/// and a directory tree 1100 levels deep (more than the 1024 open files
/// a process gets by default).
const PLANT: &str = r#"plant() (
  mkdir -p "$1" && cd "$1" || exit 1
  ln -s /srv/host-marker marker-link; ln -s / root-link; ln -s /srv/host-marker/file file-link
  mkfifo fifo; mknod null-dev c 1 3; touch "$(printf 'new\nline')"
  i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done
  ln -s /srv/host-marker deep-link; mkfifo deep-fifo
)
"#;

fn wait_for(p: &Podc, test: &str) {
    p.sd.sh_ok(&format!(
        "for i in $(seq 600); do {test} && exit 0; sleep 0.1; done; echo timed out: '{test}'; exit 1"
    ));
}

#[test]
fn restart_and_delete_survive_what_a_container_left_in_its_layer_and_volumes() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    make_marker(&p);
    let before = marker_state(&p);
    let script = format!(
        "{PLANT}echo run >> /scratch/runs; n=$(wc -l < /scratch/runs); \
         plant / && plant /scratch/$n && plant /mem/$n && touch /scratch/planted; exec sleep 1000"
    );
    let mut y = pod_yaml("hl", "", &[("app", &script)]);
    y.push_str(
        "    volumeMounts: [{name: scratch, mountPath: /scratch}, {name: mem, mountPath: /mem}]\n  \
         volumes: [{name: scratch, emptyDir: {}}, {name: mem, emptyDir: {medium: Memory}}]\n",
    );
    p.manifest("/srv/hl.yaml", &y);
    p.apply_ok("/srv/hl.yaml", &[]);
    let scratch = "/var/lib/podc/pods/default_hl/volumes/scratch";
    wait_for(&p, &format!("test -e {scratch}/planted"));
    p.sd.sh_ok("test -p /var/lib/podc/pods/default_hl/containers/app/upper/fifo");

    // The joiner throws the old writable layer away and starts afresh.
    p.sd.sh_ok(&format!("rm {scratch}/planted"));
    p.sd.sh("systemctl restart podc_default_hl_app.service");
    p.sd.sh(&format!(
        "for i in $(seq 600); do test -e {scratch}/planted && break; sleep 0.1; done"
    ));
    assert_eq!(
        p.sd.sh_ok(&format!("cat {scratch}/runs")),
        "run\nrun\n",
        "the container did not start again: {}",
        p.sd.sh_ok("journalctl --no-pager -o cat -u podc_default_hl_app.service | tail -5")
    );

    // Volume teardown and setup (a restart of the whole pod).
    p.sd.sh_ok(&format!("rm {scratch}/planted"));
    p.sd.sh_ok("systemctl restart podc_default_hl.service");
    p.sd.sh_ok("systemctl start podc_default_hl.target");
    wait_for(&p, &format!("test -e {scratch}/planted"));
    assert_eq!(
        p.sd.sh_ok(&format!("cat {scratch}/runs")),
        "run\nrun\nrun\n"
    );

    // An admin's shell has 1024 open files too.
    let del = p.sd.sh("ulimit -n 1024; /run/podc-lib/podc delete hl");
    assert!(
        del.status.success(),
        "delete failed: {}",
        support::podc::show(&del)
    );
    p.sd.sh_ok("test ! -e /var/lib/podc/pods/default_hl && test ! -e /run/podc/pods/default_hl && test ! -e /run/podc/volumes/default_hl");
    assert_eq!(marker_state(&p), before, "the host marker changed");
    Ok(())
}

/// `podc-pause oom-check` runs as root on the host in the container's
/// unit, after the container: it reads its own cgroup from the host's
/// `/proc/self/cgroup` and the kernel's counters under the host's
/// `/sys/fs/cgroup`. A root container can change neither: its `/sys` is
/// read-only (no sub-cgroup, no write to a counter or to the limit), and
/// what it leaves running is killed with the unit.
#[test]
fn a_root_container_cannot_steer_the_oom_check() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    let script = "own=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); \
         for a in \"mkdir $own/fake\" \"echo 1 > $own/memory.events\" \"echo max > $own/memory.max\" \
         \"echo 1 > $own/memory.oom.group\" \"mkdir /sys/fs/cgroup/podc-fake\"; do \
         sh -c \"$a\" 2>/dev/null && echo \"allowed: $a\"; done > /scratch/tried; \
         (trap '' TERM; exec sleep 1000) & touch /scratch/done; exec sleep 1000";
    let mut y = pod_yaml("oc", "", &[("app", script)]);
    y.push_str(
        "    resources: {limits: {memory: 64Mi}}\n    volumeMounts: [{name: scratch, mountPath: /scratch}]\n  \
         volumes: [{name: scratch, emptyDir: {}}]\n",
    );
    p.manifest("/srv/oc.yaml", &y);
    p.apply_ok("/srv/oc.yaml", &[]);
    let scratch = "/var/lib/podc/pods/default_oc/volumes/scratch";
    wait_for(&p, &format!("test -e {scratch}/done"));
    assert_eq!(p.sd.sh_ok(&format!("cat {scratch}/tried")), "");
    let unit = "podc_default_oc_app.service";
    let cgroup = format!("/sys/fs/cgroup{}", p.prop(unit, "ControlGroup"));
    p.sd.sh_ok(&format!("systemctl stop {unit}"));
    let post = p.prop(unit, "ExecStopPost");
    assert!(
        post.contains("oom-check") && post.contains("status=0"),
        "{post}"
    );
    p.sd.sh_ok(&format!(
        "test ! -e {cgroup} && test ! -e /sys/fs/cgroup/podc-fake && ! pgrep -x 'sleep'"
    ));
    p.run_ok(&["delete", "oc"]);
    Ok(())
}

/// A hostile image whose layer is a tree deeper than the 1024 open files
/// a shell has: removing and pruning it works, and the store stays usable.
#[test]
fn an_image_layer_deeper_than_the_open_file_limit_is_pruned() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.sd.sh_ok(
        "mkdir -p /run/deep-img/root && cd /run/deep-img/root && \
         i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; \
         ln -s /srv marker-link; tar -C /run/deep-img/root -cf /run/deep-img/deep.tar .",
    );
    let podc = "ulimit -n 1024; /run/podc-lib/podc image";
    p.sd.sh_ok(&format!(
        "{podc} import /run/deep-img/deep.tar --name deep:1"
    ));
    let rm = p.sd.sh(&format!("{podc} rm deep:1 && {podc} prune"));
    assert!(rm.status.success(), "{}", support::podc::show(&rm));
    p.sd.sh_ok(&format!(
        "{podc} import /run/deep-img/deep.tar --name deep:2 && {podc} check"
    ));
    Ok(())
}
