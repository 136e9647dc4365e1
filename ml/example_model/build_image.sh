#!/usr/bin/env bash
# ml/example_model/build_image.sh - build the example model image WITHOUT a registry.
#
# The root filesystem is made from this host: Debian's /usr/bin/python3 with its standard
# library (tests, tkinter, idlelib... left out), the shared libraries `ldd` names, a static
# busybox when installed (/bin/sh for debugging), and /app = server.py + features.py +
# model.json. It is tarred and `docker import`ed with CMD/ENV/EXPOSE/LABEL set: about
# 50 MB and 3 s. No numpy or scikit-learn inside: the model is plain coefficients.
#
# Idempotent: skipped when the image's org.hpcgate.build-hash label matches the inputs.
#
# Settings (environment):
#   IMAGE   tag to build            (localhost/hpcgate-example-model:latest); the model's
#           version from model.json is tagged too (localhost/hpcgate-example-model:1.0.0)
#   DOCKER  docker client           (docker on PATH; talks to $DOCKER_HOST)
#   FORCE=1 rebuild even when up to date
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
IMAGE="${IMAGE:-localhost/hpcgate-example-model:latest}"
DOCKER="${DOCKER:-docker}"
SCRIPT_VERSION=1  # bump to force a rebuild

log() { printf '[build_image.sh] %s\n' "$*"; }
die() { log "ERROR: $*"; exit 1; }

for f in server.py features.py model.json; do
  [ -f "$HERE/$f" ] || die "missing $HERE/$f (model.json comes from train.py)"
done
PY=$(readlink -f /usr/bin/python3 2>/dev/null || true)
[ -x "$PY" ] || die "needs Debian's /usr/bin/python3 on the host (apt-get install python3)"
PYV=$(basename "$PY")  # python3.11
[ -d "/usr/lib/$PYV" ] || die "no /usr/lib/$PYV standard library"
VERSION=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$HERE/model.json")
NAME=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$HERE/model.json")

HASH=$( { echo "$SCRIPT_VERSION $PY"; cat "$HERE/server.py" "$HERE/features.py" "$HERE/model.json"; } \
        | sha256sum | cut -c1-16)
have=$("$DOCKER" image inspect -f '{{index .Config.Labels "org.hpcgate.build-hash"}}' "$IMAGE" \
       2>/dev/null || true)
if [ "$have" = "$HASH" ] && [ "${FORCE:-0}" != 1 ]; then
  log "image $IMAGE up to date ($NAME $VERSION, hash $HASH)"
  exit 0
fi

WORK=$(mktemp -d /tmp/hpcgate-model-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
R="$WORK/rootfs"
mkdir -p "$R"/{usr/bin,usr/lib,usr/lib64,tmp,etc,app,proc,sys,dev,run,root}
chmod 1777 "$R/tmp"
ln -s usr/bin "$R/bin"; ln -s usr/bin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
cp -a "$PY" "$R/usr/bin/"; ln -s "$PYV" "$R/usr/bin/python3"
# the host's precompiled __pycache__ is kept: python starts ~0.4 s faster
tar -C /usr/lib -cf - --exclude="$PYV/test" --exclude="$PYV/idlelib" --exclude="$PYV/tkinter" \
    --exclude="$PYV/turtledemo" --exclude="$PYV/ensurepip" --exclude="$PYV/lib2to3" \
    --exclude="$PYV/pydoc_data" --exclude="$PYV/config-*" --exclude="$PYV/dist-packages" \
    --exclude="$PYV/site-packages" --exclude='*_test*.so' "$PYV" | tar -C "$R/usr/lib" -xf -
bins=("$PY")
BB=$(command -v busybox || true)
if [ -n "$BB" ] && ! ldd "$BB" >/dev/null 2>&1; then  # static busybox only
  cp "$BB" "$R/usr/bin/busybox"; bins+=("$BB")
  for a in $("$BB" --list); do [ -e "$R/usr/bin/$a" ] || ln -s busybox "$R/usr/bin/$a"; done
fi
for f in "${bins[@]}" "$R/usr/lib/$PYV"/lib-dynload/*.so; do ldd "$f" 2>/dev/null || true; done \
  | awk '/=>/ && $3 ~ /^\// {print $3} /^[ \t]*\/lib/ {print $1}' | sort -u | while read -r lib; do
      d=$(dirname "$lib"); d=${d#/usr}; mkdir -p "$R/usr$d"
      cp -L "$lib" "$R/usr$d/$(basename "$lib")"
    done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
cp "$HERE/server.py" "$HERE/features.py" "$HERE/model.json" "$R/app/"
chroot "$R" /usr/bin/python3 -c 'import http.server, json, math, sys; sys.path.insert(0, "/app"); import features' \
  || die "python in the image root cannot import what the server needs"

tar --numeric-owner -C "$R" -cf "$WORK/rootfs.tar" .
old_id=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
"$DOCKER" import \
  --change 'CMD ["/usr/bin/python3", "-u", "/app/server.py"]' \
  --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PORT=8080' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
  --change 'EXPOSE 8080' \
  --change 'WORKDIR /app' \
  --change 'USER 65534:65534' \
  --change "LABEL org.hpcgate.build-hash=$HASH" \
  --change "LABEL org.hpcgate.model.name=$NAME" \
  --change "LABEL org.hpcgate.model.version=$VERSION" \
  --change 'LABEL org.hpcgate.model.contract=sagemaker-byoc:8080' \
  "$WORK/rootfs.tar" "$IMAGE" >/dev/null
"$DOCKER" tag "$IMAGE" "${IMAGE%:*}:$VERSION"
new_id=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE")
# drop the previous build (fails harmlessly while a container still uses it)
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then "$DOCKER" rmi "$old_id" >/dev/null 2>&1 || true; fi
log "built $IMAGE and ${IMAGE%:*}:$VERSION ($NAME, $(( $("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE") / 1000000 )) MB)"
