#!/usr/bin/env bash
# Set up from scratch (idempotent) and run one of the README's two commands:
#   bash scripts/dev.sh test   # the whole test suite (tox), what CI runs
#   bash scripts/dev.sh demo   # headless demo on the sample data: TIFF + screenshot in demo_out/
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"; shift || true

# Qt's xcb platform and a virtual X server (napari's canvas needs OpenGL, which Xvfb gives).
need=()
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
for pkg in libxcb-icccm4 libxcb-keysyms1 libgl1 libegl1 libxkbcommon-x11-0 libxcb-cursor0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "dev.sh: please install these Debian packages first: ${need[*]}" >&2; exit 1
  fi
fi

# tox in its own small venv, so nothing is installed into the system Python.
if [ ! -x .venv-tools/bin/tox ]; then
  python3 -m venv .venv-tools
  .venv-tools/bin/pip install -q --disable-pip-version-check "tox>=4.11,<5"
fi

extra=()
[ $# -gt 0 ] && extra=(-- "$@")  # tox drops its posargs defaults after a bare --
case "$what" in
  test) exec .venv-tools/bin/tox -e py "${extra[@]}" ;;
  demo) exec .venv-tools/bin/tox -e demo "${extra[@]}" ;;
  *) echo "usage: bash scripts/dev.sh test|demo" >&2; exit 2 ;;
esac
