#!/usr/bin/env bash
# Imports one ~100 MB multi-layer OCI archive with `podc image import` and
# with `podman load`, on the same file in the same run, and prints wall
# time, peak RSS and the ratios.
#
#   bench/image-import.sh [RUNS]      (default 3; best run of each is kept)
#
# Env: PODC (podc binary; default: cargo build --release), BENCH_DIR
# (scratch dir; default: a new temp dir, removed at the end), MB (size of
# the random part, default 90), TEXT_MB (compressible part, default 60).
# Needs root for podman's overlay storage and podc's whiteouts/ownership.
set -euo pipefail

RUNS=${1:-3}
MB=${MB:-90}
TEXT_MB=${TEXT_MB:-60}
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${PODC:-}" ]]; then
    (cd "$here" && cargo build --release --quiet)
    PODC="${CARGO_TARGET_DIR:-$here/target}/release/podc"
fi
for tool in podman /usr/bin/time sha256sum gzip; do
    command -v "$tool" >/dev/null || { echo "missing $tool (run .ci/image-deps)" >&2; exit 2; }
done

keep=${BENCH_DIR:+1}
W=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$W"
cleanup() {
    podman --root "$W/podman-root" --runroot "$W/podman-run" --storage-driver overlay \
        rmi -af >/dev/null 2>&1 || true
    umount -R "$W/podman-root/overlay" 2>/dev/null || true
    [[ -n "$keep" ]] || rm -rf "$W"
}
trap cleanup EXIT

# ---- build the archive: 3 layers, incompressible + compressible data ----
L="$W/layout"
rm -rf "$L" "$W/layers"
mkdir -p "$L/blobs/sha256" "$W/layers"/{1,2,3}/data
cp /bin/busybox "$W/layers/1/busybox" 2>/dev/null || true
head -c $((MB * 6 / 10))M /dev/urandom > "$W/layers/1/data/random.bin"
# many small text files: compressible, and many entries to unpack
for i in $(seq 1 2000); do
    seq "$i" $((i + TEXT_MB * 1024 * 1024 / 2000 / 7)) > "$W/layers/2/data/text-$i.txt"
done
head -c $((MB * 4 / 10))M /dev/urandom > "$W/layers/3/data/random2.bin"
touch "$W/layers/3/data/.wh.random.bin"   # deletes layer 1's file

diff_ids=() layers_json=()
for n in 1 2 3; do
    tar --numeric-owner --owner=0 --group=0 -C "$W/layers/$n" -cf "$W/layer$n.tar" .
    diff=$(sha256sum "$W/layer$n.tar" | cut -d' ' -f1)
    gzip -1 -c "$W/layer$n.tar" > "$W/layer$n.tar.gz"
    dig=$(sha256sum "$W/layer$n.tar.gz" | cut -d' ' -f1)
    size=$(stat -c %s "$W/layer$n.tar.gz")
    mv "$W/layer$n.tar.gz" "$L/blobs/sha256/$dig"
    rm "$W/layer$n.tar"
    diff_ids+=("\"sha256:$diff\"")
    layers_json+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dig\",\"size\":$size}")
done
arch=$(uname -m); case $arch in x86_64) arch=amd64;; aarch64) arch=arm64;; esac
join() { local IFS=,; echo "$*"; }
config="{\"architecture\":\"$arch\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/busybox\",\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
printf '%s' "$config" > "$W/config.json"
cdig=$(sha256sum "$W/config.json" | cut -d' ' -f1)
mv "$W/config.json" "$L/blobs/sha256/$cdig"
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cdig\",\"size\":${#config}},\"layers\":[$(join "${layers_json[@]}")]}"
printf '%s' "$manifest" > "$W/manifest.json"
mdig=$(sha256sum "$W/manifest.json" | cut -d' ' -f1)
msize=$(stat -c %s "$W/manifest.json")
mv "$W/manifest.json" "$L/blobs/sha256/$mdig"
printf '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench/image:1"}}]}' \
    "$mdig" "$msize" > "$L/index.json"
A="$W/bench.oci.tar"
tar -C "$L" -cf "$A" .
rm -rf "$W/layers" "$L"
unpacked=$((MB * 6 / 10 + MB * 4 / 10 + TEXT_MB))
echo "archive: $(du -m "$A" | cut -f1) MB, 3 gzip layers, ~${unpacked} MB unpacked, 2000+ files"
cat "$A" > /dev/null   # same page cache state for both tools

# ---- run ----
measure() { # label cmd... -> "seconds kB"
    local out="$W/time.txt"
    /usr/bin/time -v -o "$out" "$@" >/dev/null 2>"$W/err.txt" || { cat "$W/err.txt" >&2; return 1; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$out")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
    echo "$wall $rss"
}
best() { sort -n | head -1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

podc_runs=() podman_runs=()
for r in $(seq 1 "$RUNS"); do
    rm -rf "$W/podc-root"
    podc_runs+=("$(measure "$PODC" --root "$W/podc-root" image import "$A")")
    podman --root "$W/podman-root" --runroot "$W/podman-run" --storage-driver overlay rmi -af >/dev/null 2>&1 || true
    podman_runs+=("$(measure podman --root "$W/podman-root" --runroot "$W/podman-run" \
        --storage-driver overlay --events-backend none load -q -i "$A")")
done
"$PODC" --root "$W/podc-root" image check >/dev/null

read -r pt prss < <(printf '%s\n' "${podc_runs[@]}" | best)
read -r mt mrss < <(printf '%s\n' "${podman_runs[@]}" | best)
printf '%-14s %10s %14s\n' tool "wall (s)" "peak RSS (MB)"
printf '%-14s %10.2f %14.1f\n' "podc import" "$pt" "$(echo "$prss / 1024" | bc -l)"
printf '%-14s %10.2f %14.1f\n' "podman load" "$mt" "$(echo "$mrss / 1024" | bc -l)"
printf 'time ratio podman/podc: %.2f (>1: podc faster)\n' "$(echo "$mt / $pt" | bc -l)"
printf 'RSS ratio podman/podc:  %.2f\n' "$(echo "$mrss / $prss" | bc -l)"
pm=$(printf '%s\n' "${podc_runs[@]}" | median)
mm=$(printf '%s\n' "${podman_runs[@]}" | median)
printf 'median wall: podc %.2f s, podman %.2f s, ratio %.2f\n' "$pm" "$mm" "$(echo "$mm / $pm" | bc -l)"
echo "(best of $RUNS runs each; all runs podc: ${podc_runs[*]} / podman: ${podman_runs[*]} [s kB])"
