# Run by `unshare --pid --fork --mount --mount-proc --uts` as PID 1 of the
# new namespaces (design §5): sh nsystemd-boot.sh NAME DIR...
# NAME is the instance (its cgroup in every hierarchy), each DIR gets a
# fresh tmpfs. Prints one line to stdout once it is set up (the host side
# waits for it, then knows the namespace's PID 1 exists), sends everything
# after that to stderr (a log file) and execs systemd.
# Shared by tests/support/systemd.rs (include_str!) and scripts/nsystemd.sh.
set -eu
name=$1; shift
mount --make-rprivate /
for d in "$@"; do mkdir -p "$d"; mount -t tmpfs -o mode=0755 tmpfs "$d"; done
chmod 1777 /tmp
for h in /sys/fs/cgroup/*/; do
  [ -L "${h%/}" ] || mkdir -p "$h$name" 2>/dev/null || true
done
for h in systemd unified; do
  if [ -d "/sys/fs/cgroup/$h/$name" ]; then echo $$ > "/sys/fs/cgroup/$h/$name/cgroup.procs"; fi
done
export container=podc-ns
echo booted
exec 1>&2
exec /lib/systemd/systemd --system --unit=basic.target
