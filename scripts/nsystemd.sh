# Sourced by scripts/demo.sh and bench/apply.sh: boot a throwaway systemd
# as PID 1 of a PID + mount + UTS namespace (design §5, the recipe of
# tests/support/systemd.rs), talk to it, and tear it down without a trace.
#
#   nsd_boot NAME DIR [TMPFS...]   boot; DIR is a host scratch directory;
#                                  every TMPFS path gets a fresh tmpfs inside
#   ns CMD...                      run CMD inside (nsenter -m -p -u)
#   nsd_cleanup                    kill -9 systemd, remove its cgroups
#
# After nsd_boot: $sd is systemd's host PID, $R its root as seen from the
# host (/proc/$sd/root). BOOT_TIMEOUT (s, default 60) bounds the boot.

# The boot script (shared with tests/support/systemd.rs): private mounts,
# tmpfs over everything written (the journal included), a cgroup of its own
# in every hierarchy, then exec systemd.
NSD_BOOT=$(cat "$(dirname "${BASH_SOURCE[0]}")/nsystemd-boot.sh")

nsd_upid="" sd="" nsd_name="" R=""

nsd_cleanup() {
    set +e
    if [[ -n $sd ]]; then kill -9 "$sd" 2>/dev/null; elif [[ -n $nsd_upid ]]; then kill -9 "$nsd_upid" 2>/dev/null; fi
    [[ -n $nsd_upid ]] && wait "$nsd_upid" 2>/dev/null
    # remove this instance's cgroups, depth first; a dying cgroup may be busy for a moment
    [[ -n $nsd_name ]] || return 0
    for h in /sys/fs/cgroup/*/; do
        [[ -L ${h%/} || ! -d $h$nsd_name ]] && continue
        for _ in $(seq 50); do
            find "$h$nsd_name" -depth -type d -exec rmdir {} + 2>/dev/null
            [[ -d $h$nsd_name ]] || break
            sleep 0.1
        done
    done
}

ns() { nsenter -t "$sd" -m -p -u -- "$@"; }

nsd_boot() { # nsd_boot NAME DIR [TMPFS...]
    nsd_name=$1
    local dir=$2 timeout=${BOOT_TIMEOUT:-60}
    shift 2
    unshare --kill-child=SIGKILL --pid --fork --mount --mount-proc --uts \
        /bin/sh -c "$NSD_BOOT" boot "$nsd_name" "$@" </dev/null >"$dir/boot.out" 2>"$dir/boot.log" &
    nsd_upid=$!
    for _ in $(seq $((timeout * 10))); do
        grep -q booted "$dir/boot.out" 2>/dev/null && break
        kill -0 "$nsd_upid" 2>/dev/null || { cat "$dir/boot.log" >&2; return 1; }
        sleep 0.1
    done
    sd=$(cut -d' ' -f1 "/proc/$nsd_upid/task/$nsd_upid/children")
    [[ -n $sd ]] || { echo "no systemd" >&2; cat "$dir/boot.log" >&2; return 1; }
    R=/proc/$sd/root
    local state=""
    for _ in $(seq "$timeout"); do
        state=$(ns timeout 5 systemctl is-system-running --wait 2>/dev/null || true)
        [[ $state == running || $state == degraded ]] && break
        sleep 1
    done
    [[ $state == running || $state == degraded ]] || {
        echo "systemd: '$state'" >&2; tail -20 "$dir/boot.log" >&2; return 1
    }
    echo "# namespaced systemd $(ns systemctl --version | head -1 | cut -d' ' -f2) (pid $sd) is $state" >&2
}

# A busybox image tree (busybox --install -s), tarred at $1 inside the
# namespace; the tree itself is left at $1.d.
nsd_busybox_tar() {
    ns sh -ec "d=$1.d; mkdir -p \$d/bin \$d/etc \$d/proc \$d/sys \$d/dev \$d/tmp \$d/run
  cp /bin/busybox \$d/bin/busybox; chroot \$d /bin/busybox --install -s /bin
  echo 'root:x:0:0:root:/root:/bin/sh' > \$d/etc/passwd; printf 'root:x:0:\n' > \$d/etc/group
  touch \$d/etc/hosts \$d/etc/hostname \$d/etc/resolv.conf
  tar -C \$d -cf $1 ."
}
