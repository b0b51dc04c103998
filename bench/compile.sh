#!/usr/bin/env bash
# Benchmark `podc build`: 100, 1,000 and 10,000 generated pods of 3
# containers each. Prints wall time and peak memory per size, the growth
# ratio (linear = 10x per step), and the ratio against a baseline run in the
# same invocation on the same files: PyYAML's safe_load_all, i.e. only
# *parsing* the manifests, which is a floor for any tool that reads them.
#
# Usage: bench/compile.sh [RUNS]   (median of RUNS runs, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release --quiet
podc=$PWD/target/release/podc
# Output goes to a tmpfs: this measures podc, not the disk. (On this
# workplace's VMs creating a file on the ext4 root costs ~0.5 ms, which
# would add ~3 s per 1,000 pods of 6 unit files; a tmpfs costs ~20 us.)
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT

gen() { # gen N DIR: N pods, 3 containers each, 100 pods per file
  python3 - "$1" "$2" <<'PY'
import os, sys
n, d = int(sys.argv[1]), sys.argv[2]
os.makedirs(d, exist_ok=True)
pod = """apiVersion: v1
kind: Pod
metadata:
  name: pod-{i}
  labels: {{app: bench, index: "{i}"}}
spec:
  restartPolicy: Always
  volumes:
  - name: data
    emptyDir: {{}}
  containers:
  - name: web
    image: busybox:1.36
    command: ["httpd", "-f", "-p", "8080"]
    ports: [{{containerPort: 8080, name: http}}]
    env:
    - {{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: GREETING, value: "hello $(POD)"}}
    resources: {{limits: {{cpu: 200m, memory: 64Mi}}, requests: {{cpu: 100m, memory: 32Mi}}}}
    volumeMounts: [{{name: data, mountPath: /data}}]
    lifecycle: {{preStop: {{httpGet: {{path: /quit, port: http}}}}}}
  - name: worker
    image: busybox:1.36
    command: ["sh", "-c", "while :; do sleep 1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: logger
    image: busybox:1.36
    args: ["tail", "-F", "/data/log"]
    command: ["/bin/busybox"]
    volumeMounts: [{{name: data, mountPath: /data, readOnly: true}}]
"""
for f in range(0, n, 100):
    with open(os.path.join(d, f"pods-{f:05d}.yaml"), "w") as out:
        out.write("---\n".join(pod.format(i=i) for i in range(f, min(n, f + 100))))
PY
}

# median of "seconds kilobytes" lines
median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

measure() { # measure CMD...: prints "wall_s peak_kb cpu_s" (median wall over runs)
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >/dev/null 2>&1
    awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$work/time"
  done | median
}

printf '%-7s %8s %8s %9s %10s %11s %8s %7s\n' pods podc_s podc_cpu podc_MiB pyyaml_s pyyaml_MiB ratio growth
prev=""
for n in 100 1000 10000; do
  gen "$n" "$work/in-$n"
  read -r ps pk pc < <(measure "$podc" build --systemd-version 252 --node-name bench -o "$work/out-$n" "$work/in-$n")
  read -r ys yk _ < <(measure python3 -c 'import sys, glob, yaml
for f in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    list(yaml.safe_load_all(open(f)))' "$work/in-$n")
  units=$(ls "$work/out-$n/units" | wc -l)
  [ "$units" -eq $((n * 6)) ] || { echo "expected $((n * 6)) units, got $units" >&2; exit 1; }
  growth=${prev:+$(awk -v a="$ps" -v b="$prev" 'BEGIN {printf "%.1fx", (b > 0 ? a / b : 0)}')}
  printf '%-7s %8s %8s %9.1f %10s %11.1f %7.2fx %7s\n' "$n" "$ps" "$pc" "$(awk -v k="$pk" 'BEGIN{print k/1024}')" \
    "$ys" "$(awk -v k="$yk" 'BEGIN{print k/1024}')" "$(awk -v a="$ps" -v b="$ys" 'BEGIN{print (b > 0 ? a / b : 0)}')" "${growth:--}"
  prev=$ps
done
echo "podc_s = wall seconds (median of $runs), podc_cpu = user+sys seconds of that run"
echo "ratio = podc build time / PyYAML parse-only time on the same files (lower is better)"
echo "growth = time / time of the previous size (10.0x is linear)"
