#!/usr/bin/env bash
# Build (or find in the cache) everything jobq's Kueue test environment needs:
#   * kube-apiserver  (wrapper module in ./apiserver requiring k8s.io/kubernetes $KUBE_VERSION)
#   * kueue           (built inside a writable copy of sigs.k8s.io/kueue@$KUEUE_VERSION)
#   * Kueue's CRDs and webhook manifest (from the same Kueue module directory)
#   * etcd            (Debian's etcd-server package, installed with apt-get if missing)
# Everything but etcd lands in $CACHE_ROOT/<key>/ with key = versions + `go env GOVERSION`;
# a build whose outputs are already there only checks them (seconds). Idempotent; safe to rerun.
#
# Usage: build.sh [--print-dir] [--update-apiserver-mod] [--keep-work]
#   --print-dir             print the cache dir of this key and exit (builds nothing)
#   --update-apiserver-mod  regenerate apiserver/go.mod + go.sum for KUBE_VERSION, then exit
#   --keep-work             keep the writable source copies under $CACHE_ROOT/work
# Environment:
#   JOBQ_KUBE_TESTENV_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/jobq-kube-testenv)
#   JOBQ_KUBE_TESTENV_GO_P   go build -p (default 2)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"   # v1.36.2 -> v0.36.2
KUBE_MINOR=$(echo "$KUBE_VERSION" | cut -d. -f2)
GO_P=${JOBQ_KUBE_TESTENV_GO_P:-2}

print_dir=0 update_mod=0 keep_work=0
for arg in "$@"; do
    case "$arg" in
        --print-dir) print_dir=1 ;;
        --update-apiserver-mod) update_mod=1 ;;
        --keep-work) keep_work=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "[kube-testenv build] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH (need the Go toolchain, e.g. go 1.26)"
command -v python3 >/dev/null || die "python3 is not on PATH"
GOVERSION=$(go env GOVERSION)
CACHE_ROOT=${JOBQ_KUBE_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobq-kube-testenv}
KEY="kube-${KUBE_VERSION}_kueue-${KUEUE_VERSION}_${GOVERSION}"
CACHE="$CACHE_ROOT/$KEY"
WORK="$CACHE_ROOT/work"
LOGS="$CACHE_ROOT/logs"

if [ "$print_dir" = 1 ]; then echo "$CACHE"; exit 0; fi

# json_field FILE FIELD: one field of a `go mod download -json` answer.
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]) or "")' "$1" "$2"; }

# mod_download MODULE@VERSION OUTFILE: download a module (exact version: no version list needed).
mod_download() {
    local out=$2 err
    go mod download -json "$1" >"$out" || true
    err=$(json_field "$out" Error)
    [ -z "$err" ] || die "go mod download $1: $err"
    [ -n "$(json_field "$out" Dir)" ] || die "go mod download $1 gave no Dir (see $out)"
}

# staging_modules: the modules k8s.io/kubernetes' go.mod requires at plain v0.0.0 (its staging
# repos), one per line, sorted. Not k8s.io/utils or k8s.io/kube-openapi (pseudo-versions).
staging_modules() {
    local gomod
    mod_download "k8s.io/kubernetes@$KUBE_VERSION" "$WORK/kubernetes-download.json"
    gomod=$(json_field "$WORK/kubernetes-download.json" GoMod)
    go mod edit -json "$gomod" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("\n".join(sorted(r["Path"] for r in d["Require"] if r["Version"] == "v0.0.0")))'
}

mkdir -p "$CACHE_ROOT" "$WORK" "$LOGS"
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then log "another build holds $CACHE_ROOT/.build.lock; waiting"; flock 9; fi

if [ "$update_mod" = 1 ]; then
    tmp="$WORK/apiserver-mod-update"
    rm -rf "$tmp" && mkdir -p "$tmp"
    cp "$HERE/apiserver/main.go" "$tmp/"
    mods=$(staging_modules)
    log "k8s.io/kubernetes $KUBE_VERSION requires $(echo "$mods" | wc -l) staging modules at v0.0.0 -> $STAGING_VERSION"
    gover=$(go mod edit -json "$(json_field "$WORK/kubernetes-download.json" GoMod)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')
    (
        cd "$tmp"
        go mod init jobq.dev/tools/kube-testenv/apiserver >/dev/null 2>&1
        args=(-go="$gover" -require="k8s.io/kubernetes@$KUBE_VERSION")
        for m in $mods; do args+=(-replace="$m=$m@$STAGING_VERSION"); done
        go mod edit "${args[@]}"
        GOFLAGS=-mod=mod go mod tidy >"$LOGS/apiserver-mod-tidy.log" 2>&1 || die "go mod tidy failed, see $LOGS/apiserver-mod-tidy.log"
    )
    cp "$tmp/go.mod" "$tmp/go.sum" "$HERE/apiserver/"
    rm -rf "$tmp"
    log "updated $HERE/apiserver/go.mod and go.sum"
    exit 0
fi

ensure_etcd() {
    if command -v etcd >/dev/null; then return; fi
    log "etcd not found; installing Debian's etcd-server"
    local sudo=()
    [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo=(sudo -n); } || die "etcd missing and not root: apt-get install etcd-server"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y etcd-server >"$LOGS/apt-etcd.log" 2>&1; then
        "${sudo[@]}" apt-get update >>"$LOGS/apt-etcd.log" 2>&1 || true
        "${sudo[@]}" apt-get install -y etcd-server >>"$LOGS/apt-etcd.log" 2>&1 \
            || die "apt-get install etcd-server failed, see $LOGS/apt-etcd.log"
    fi
    command -v etcd >/dev/null || die "etcd-server installed but no etcd on PATH"
}

# run_logged NAME CMD...: run a long command with its output in a log file; tail it on failure.
run_logged() {
    local name=$1; shift
    local logf="$LOGS/$name.log"
    if ! "$@" >"$logf" 2>&1; then
        log "$name failed; last lines of $logf:"
        tail -n 40 "$logf" >&2
        exit 1
    fi
}

build_apiserver() {
    local out="$CACHE/bin/kube-apiserver" src="$WORK/apiserver-$KUBE_VERSION" start
    if [ -x "$out" ]; then log "kube-apiserver $KUBE_VERSION: cached ($out)"; return; fi
    start=$(date +%s)
    log "building kube-apiserver $KUBE_VERSION (cold: ~5 min on 2 cores; log: $LOGS/build-apiserver.log)"
    # The committed replace list must be exactly kubernetes' v0.0.0 requirements.
    local want have
    want=$(staging_modules)
    have=$(go mod edit -json "$HERE/apiserver/go.mod" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if not any(r["Path"] == "k8s.io/kubernetes" and r["Version"] == sys.argv[2] for r in d["Require"]):
    print("(k8s.io/kubernetes is not required at %s)" % sys.argv[2])
print("\n".join(sorted(r["Old"]["Path"] for r in d.get("Replace") or [] if r["New"].get("Version") == sys.argv[1])))' "$STAGING_VERSION" "$KUBE_VERSION")
    [ "$want" = "$have" ] || die "apiserver/go.mod does not match k8s.io/kubernetes@$KUBE_VERSION (required version, or replaces of its v0.0.0 staging modules); run $0 --update-apiserver-mod"
    rm -rf "$src" && mkdir -p "$src"
    cp "$HERE/apiserver/go.mod" "$HERE/apiserver/go.sum" "$HERE/apiserver/main.go" "$src/"
    local ld="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
    ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$KUBE_MINOR"
    ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
    mkdir -p "$CACHE/bin"
    (cd "$src" && run_logged build-apiserver nice -n 10 go build -mod=readonly -buildvcs=false -p "$GO_P" \
        -ldflags "$ld" -o "$out.tmp" .)
    mv -f "$out.tmp" "$out"
    [ "$keep_work" = 1 ] || rm -rf "$src"
    log "kube-apiserver built in $(( $(date +%s) - start )) s"
    echo "$(( $(date +%s) - start ))" >"$CACHE/.apiserver-build-seconds"
}

build_kueue() {
    local out="$CACHE/bin/kueue" src="$WORK/kueue-$KUEUE_VERSION" start dir
    if [ -x "$out" ] && [ -s "$CACHE/webhook/manifests.yaml" ] && ls "$CACHE"/crds/*.yaml >/dev/null 2>&1; then
        log "kueue $KUEUE_VERSION: cached ($out)"; return
    fi
    start=$(date +%s)
    log "building kueue $KUEUE_VERSION (cold: ~5 min on 2 cores; log: $LOGS/build-kueue.log)"
    mod_download "sigs.k8s.io/kueue@$KUEUE_VERSION" "$WORK/kueue-download.json"
    dir=$(json_field "$WORK/kueue-download.json" Dir)
    # Build inside a writable copy of the module: `go install ...@version` needs version lists,
    # which this proxy refuses; inside the module every dependency comes from its go.sum.
    rm -rf "$src" && cp -r "$dir" "$src" && chmod -R u+w "$src"
    mkdir -p "$CACHE/bin" "$CACHE/crds.tmp" "$CACHE/webhook"
    rm -f "$CACHE"/crds.tmp/*
    cp "$src"/config/components/crd/bases/*.yaml "$CACHE/crds.tmp/"
    rm -rf "$CACHE/crds" && mv "$CACHE/crds.tmp" "$CACHE/crds"
    cp "$src/config/components/webhook/manifests.yaml" "$CACHE/webhook/manifests.yaml"
    (cd "$src" && run_logged build-kueue nice -n 10 go build -mod=readonly -buildvcs=false -p "$GO_P" \
        -ldflags "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" -o "$out.tmp" ./cmd/kueue)
    mv -f "$out.tmp" "$out"
    [ "$keep_work" = 1 ] || rm -rf "$src"
    log "kueue built in $(( $(date +%s) - start )) s"
    echo "$(( $(date +%s) - start ))" >"$CACHE/.kueue-build-seconds"
}

t0=$(date +%s)
ensure_etcd
build_kueue
build_apiserver
python3 - "$CACHE" "$KUBE_VERSION" "$KUEUE_VERSION" "$GOVERSION" "$(command -v etcd)" <<'EOF'
import json, os, sys
cache, kube, kueue, gover, etcd = sys.argv[1:]
manifest = {"kube_version": kube, "kueue_version": kueue, "go_version": gover,
            "kube_apiserver": os.path.join(cache, "bin", "kube-apiserver"),
            "kueue": os.path.join(cache, "bin", "kueue"), "etcd": etcd,
            "crds": os.path.join(cache, "crds"),
            "webhook_manifest": os.path.join(cache, "webhook", "manifests.yaml")}
tmp = os.path.join(cache, "manifest.json.tmp")
with open(tmp, "w") as f:
    json.dump(manifest, f, indent=2)
os.replace(tmp, os.path.join(cache, "manifest.json"))
EOF
log "ready in $(( $(date +%s) - t0 )) s: $CACHE ($(du -sh "$CACHE" | cut -f1))"
