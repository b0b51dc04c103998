#!/usr/bin/env bash
# podc's main job on the bundled example pods, on a real systemd, on a
# machine where systemd is not PID 1 (a container, a CI runner): boot a
# throwaway systemd 252 in a namespace, import a busybox image, `podc apply`
# every pod of examples/, show what a user sees (`podc get`, `systemctl
# status`, `journalctl`), then `podc delete` them and tear everything down.
#
#   sudo scripts/demo.sh              (set DEMO_SHELL=1 for a shell inside
#                                      the namespace before the teardown)
# On a host whose PID 1 is systemd, the same is just:
#   podc image import busybox.tar --name busybox:1.36 && podc apply -f examples/
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root (unshare, mounts, cgroups): sudo $0" >&2; exit 2; }
for t in unshare nsenter /lib/systemd/systemd /bin/busybox; do
    command -v "$t" >/dev/null || { echo "missing $t; run .ci/deps first" >&2; exit 2; }
done
. scripts/nsystemd.sh

cargo build --release --quiet
cargo rustc --release --quiet --bin podc-pause -- -C target-feature=+crt-static
rel="${CARGO_TARGET_DIR:-$PWD/target}/release"
W=$(mktemp -d)
cp "$rel/podc" "$rel/podc-pause" "$W/"   # the next `cargo build` relinks podc-pause dynamically
trap 'nsd_cleanup; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

nsd_boot "podc-demo-$$" "$W" /run /tmp /etc/systemd/system /var/lib/podc /var/log/journal
LIB=/run/podc-lib D=/run/demo
mkdir -p "$R$LIB" "$R$D"
cp "$W/podc" "$W/podc-pause" "$R$LIB/"
cp -r examples "$R$D/examples"
podc() { ns "$LIB/podc" "$@"; }
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

nsd_busybox_tar "$D/busybox.tar"
say podc image import busybox.tar --name busybox:1.36
podc image import "$D/busybox.tar" --name busybox:1.36

say podc apply -f examples/
rc=0
podc apply -f "$D/examples" --libexec-dir "$LIB" --timeout 120s || rc=$?

say podc get pods -A -o wide
podc get pods -A -o wide
say systemctl status podc-default_web.slice
ns systemctl status --no-pager --lines=0 podc-default_web.slice || true
say podc exec web -c httpd -- sh -c "hostname; wget -qO- http://127.0.0.1:8080/ | head -3"
podc exec web -c httpd -- sh -c "hostname; wget -qO- http://127.0.0.1:8080/ | head -3" || true
say journalctl -u podc_default_web_httpd.service
ns journalctl --no-pager -n 5 -u podc_default_web_httpd.service || true

if [[ -n ${DEMO_SHELL:-} ]]; then
    echo "# a shell inside the namespace (podc is $LIB/podc); exit to tear down"
    ns env PATH="$LIB:$PATH" bash -i || true
fi
say podc delete -f examples/
podc delete -f "$D/examples"
exit "$rc"
