#!/usr/bin/env bash
# Benchmark starting pods: `podc apply` vs hand-written systemd units (the
# floor) vs `podman kube play`, on one throwaway systemd 252 booted in a PID
# namespace (design §5, the same recipe as tests/support/systemd.rs), with
# the same busybox image and the same manifests, in one invocation.
#
#   sudo bench/apply.sh [RUNS]        (median of RUNS runs, default 3)
#
# Env: SIZES (pod counts, default "1 10 50"; each pod has 2 containers
# running busybox `sleep`), BOOT_TIMEOUT (s, default 60), TOOLS (default
# "podc floor podman"; a subset for quicker runs while working on one),
# KEEP_JOURNAL (a file: the namespaced journal of the whole run, in
# short-precise format, is copied there at the end, for per-unit timings).
# Prints a time table and the resident memory per pod that each tool keeps
# outside the containers' own processes. See docs/bench-apply.md.
set -euo pipefail
RUNS=${1:-3}
SIZES=${SIZES:-"1 10 50"}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}
TOOLS=${TOOLS:-"podc floor podman"}
KEEP_JOURNAL=${KEEP_JOURNAL:-}
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root (unshare, mounts, cgroups)" >&2; exit 2; }
for t in unshare nsenter podman /lib/systemd/systemd /bin/busybox; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }
done

# ---- 1. build: podc (release) and a static podc-pause ----------------------
cargo build --release --quiet
cargo rustc --release --quiet --bin podc-pause -- -C target-feature=+crt-static
rel="${CARGO_TARGET_DIR:-$PWD/target}/release"
W=$(mktemp -d)
cp "$rel/podc" "$rel/podc-pause" "$W/"   # the next `cargo build` relinks podc-pause dynamically
if file -L "$W/podc-pause" | grep -q 'dynamically linked'; then
    echo "podc-pause is not static" >&2; exit 1
fi

# ---- 2. boot systemd 252 in a PID + mount + UTS namespace ------------------
# scripts/nsystemd.sh: tmpfs over everything written (incl. the journal and
# both tools' stores), a cgroup of its own in every hierarchy.
. scripts/nsystemd.sh
name=podc-bench-$$
trap 'nsd_cleanup; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
nsd_boot "$name" "$W" /run /tmp /etc/systemd/system /var/lib/podc /var/log/journal \
    /var/lib/containers /var/cache/containers /etc/containers/systemd

LIB=/run/podc-lib B=/run/bench
mkdir -p "$R$LIB" "$R$B"
cp "$W/podc" "$W/podc-pause" "$R$LIB/"
podc() { ns "$LIB/podc" "$@"; }

# ---- the image: a busybox tree, for podc and for podman ---------------------
nsd_busybox_tar "$B/busybox.tar"
podc image import "$B/busybox.tar" --name busybox:1.36 >/dev/null
# podman: storage on the namespace's tmpfs (/var/lib/containers), no network
# stack (--network none at play), the systemd cgroup manager (cgroupfs would
# put conmon and containers under /libpod_parent at the root of the host's
# hierarchies, outside this instance's cgroup; with systemd they land in the
# namespaced systemd's machine.slice), events and logs to files.
cat >"$R$B/containers.conf" <<'EOF'
[containers]
log_driver = "k8s-file"
[engine]
cgroup_manager = "systemd"
events_logger = "file"
EOF
pm() { ns env CONTAINERS_CONF=$B/containers.conf podman --storage-driver overlay "$@"; }
pm import --quiet --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$B/busybox.tar" localhost/busybox:1.36 >/dev/null

# ---- manifests ---------------------------------------------------------------
manifests() { # manifests N DIR PREFIX
    mkdir -p "$R$2"
    for i in $(seq 0 $(($1 - 1))); do
        cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: $3-$i
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox:1.36
    command: ["sleep", "3600"]
  - name: b
    image: busybox:1.36
    command: ["sleep", "3600"]
EOF
    done >"$R$2/pods.yaml"
}

# Floor units: per pod a slice, an infra service owning a private network
# and IPC namespace, and 2 container services joining them
# (JoinsNamespaceOf=), the second ordered after the first, chrooted into the same busybox tree with API file
# systems, running the same `sleep`; a target wanting all three. Type=exec:
# `systemctl start` returns once every process has exec'd.
floor_units() { # floor_units N
    local u=$R/etc/systemd/system i c
    rm -f "$u"/floor*
    for i in $(seq 0 $(($1 - 1))); do
        printf '[Unit]\nWants=floor-%s.service floor-%s-a.service floor-%s-b.service\n' "$i" "$i" "$i" >"$u/floor-$i.target"
        printf '[Slice]\n' >"$u/floor-$i.slice"
        printf '[Service]\nType=exec\nSlice=floor-%s.slice\nPrivateNetwork=yes\nPrivateIPC=yes\nExecStart=/bin/sleep 3600\n' "$i" >"$u/floor-$i.service"
        for c in a b; do
            # b after a: podc starts containers in spec order, as Kubernetes does
            printf '[Unit]\nBindsTo=floor-%s.service\nAfter=floor-%s.service %s\nJoinsNamespaceOf=floor-%s.service\n[Service]\nType=exec\nSlice=floor-%s.slice\nPrivateNetwork=yes\nPrivateIPC=yes\nRootDirectory=%s/busybox.tar.d\nMountAPIVFS=yes\nExecStart=/bin/sleep 3600\n' \
                "$i" "$i" "$([[ $c == b ]] && echo "floor-$i-a.service")" "$i" "$i" "$B" >"$u/floor-$i-$c.service"
        done
    done
    ns systemctl daemon-reload
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
rss_kb() { # sum of VmRSS (kB) of this instance's processes whose "comm cmdline" matches ERE $1
    local sum=0 p k
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
        grep -q "/$name/" "/proc/$p/cgroup" 2>/dev/null || continue
        [[ "$(cat "/proc/$p/comm" 2>/dev/null) $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" =~ $1 ]] || continue
        k=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
        sum=$((sum + ${k:-0}))
    done
    echo "$sum"
}
running_sleeps() { ns sh -c 'pgrep -xc sleep || true'; }
fail() { echo "FAILED: $*" >&2; exit 1; }

declare -A T
mem_podc="" mem_join=0 mem_podman="" mem_n=""
for n in $SIZES; do
    manifests "$n" "$B/podc-$n" bench
    manifests "$n" "$B/podman-$n" bench
    floor_units "$n"
    for tool in $TOOLS; do
        for r in $(seq "$RUNS"); do
            case $tool in
            podc)
                t0=$(now)
                podc apply -f "$B/podc-$n" --libexec-dir "$LIB" --timeout 300s >"$W/out" 2>&1 || { cat "$W/out" >&2; fail "podc apply $n"; }
                t=$(elapsed "$t0")
                [[ $(grep -c 'Running 2/2' "$W/out") -eq $n ]] || { cat "$W/out" >&2; fail "podc: not all Running"; }
                [[ $r -eq $RUNS ]] && { mem_podc=$(rss_kb '^podc-pause .*--pod-id'); mem_join=$(rss_kb '^podc-pause .* join '); mem_n=$n; }
                podc delete -f "$B/podc-$n" >"$W/out" 2>&1 || { cat "$W/out" >&2; fail "podc delete"; }
                ;;
            floor)
                targets=$(seq -f 'floor-%g.target' 0 $((n - 1)))
                t0=$(now)
                # shellcheck disable=SC2086
                ns timeout 300 systemctl start $targets || fail "systemctl start"
                t=$(elapsed "$t0")
                # shellcheck disable=SC2086
                ns timeout 300 systemctl stop $targets $(seq -f 'floor-%g.service' 0 $((n - 1))) \
                    $(seq -f 'floor-%g-a.service' 0 $((n - 1))) $(seq -f 'floor-%g-b.service' 0 $((n - 1))) || fail "systemctl stop"
                ;;
            podman)
                t0=$(now)
                pm kube play --network none "$B/podman-$n/pods.yaml" >"$W/out" 2>&1 || { cat "$W/out" >&2; fail "podman kube play $n"; }
                t=$(elapsed "$t0")
                up=$(pm ps -q --filter status=running | wc -l)
                [[ $up -eq $((3 * n)) ]] || fail "podman: $up of $((3 * n)) containers (infra + 2 per pod) running"
                [[ $r -eq $RUNS && $n == "$mem_n" ]] && mem_podman=$(rss_kb '^(conmon|catatonit) ')
                pm pod rm -af -t 0 >"$W/out" 2>&1 || { cat "$W/out" >&2; fail "podman pod rm"; }
                ;;
            esac
            echo "# N=$n $tool run $r: $t s" >&2
            echo "$t" >>"$W/t-$tool-$n"
        done
        T[$tool-$n]=$(median <"$W/t-$tool-$n")
    done
    left=$(running_sleeps)
    [[ $left -eq 0 ]] || fail "$left sleep processes left after N=$n"
done

[[ -n $KEEP_JOURNAL ]] && ns journalctl --no-pager -o short-precise >"$KEEP_JOURNAL"
echo
echo "pod start, median of $RUNS runs (2 busybox sleep containers per pod)"
printf '%5s %8s %8s %9s %10s %12s\n' N podc_s floor_s podman_s podc/floor podman/podc
for n in $SIZES; do
    awk -v n="$n" -v p="${T[podc-$n]:-}" -v f="${T[floor-$n]:-}" -v m="${T[podman-$n]:-}" 'BEGIN {
        printf "%5d %8.3f %8.3f %9.3f %9.2fx %11.2fx\n", n, p, f, m, (f > 0 ? p / f : 0), (p > 0 ? m / p : 0) }'
done
echo
echo "resident memory per pod outside the containers' processes (N=$mem_n, while running)"
awk -v n="$mem_n" -v a="$mem_podc" -v j="$mem_join" -v b="$mem_podman" 'BEGIN {
    printf "podc   (podc-pause infra):        %7.0f kB/pod\n", a / n
    printf "podc   (podc-pause joiners left): %7.0f kB/pod\n", j / n
    printf "podman (conmon + catatonit):      %7.0f kB/pod\n", b / n
    printf "podc / podman:                    %7.2f\n", (b > 0 ? a / b : 0) }'
