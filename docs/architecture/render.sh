#!/usr/bin/env bash
# Render the architecture pictures (needs Graphviz: apt-get install graphviz).
set -euo pipefail
cd "$(dirname "$0")"
for name in layers flow; do dot -Tpng -Gdpi=110 "$name.dot" -o "$name.png"; done
