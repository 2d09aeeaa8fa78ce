#!/usr/bin/env bash
# Strategy comparison of the generalisation issue at an equal CPU budget: for one leave-one-data-set-out fold,
# the three strategies warm-started from the shipped weights (which never saw usiigaci or the TEM set, so each
# result stays a valid LODO fold), each stopped after the same CPU time of its training loop.
#   bash benchmarks/weights/compare.sh FOLD_SET [STRATEGY ...]      (default strategies: episodic reptile moco)
# Resumable: a finished run (its .pt exists) is skipped, a cut one continues from its checkpoint.
# Budget: CPU_MINUTES (default 12) of one thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${D:-../shared/data}
FOLD=$1; shift
SHORT=${FOLD%%_*}; SHORT=${SHORT//:/_}
INIT=src/napari_fewcell/weights/fewcell_embed_v1.pt
PY=${PY:-.tox/py/bin/python}
for S in "${@:-episodic reptile moco}"; do
  for STRAT in $S; do
    OUT=benchmarks/weights/lodo_${SHORT}_${STRAT}_warm.pt
    [ -f "$OUT" ] && { echo "$OUT exists: skipped"; continue; }
    RESUME=(); [ -f "$OUT.ckpt" ] && RESUME=(--resume "$OUT.ckpt")
    PYTHONPATH=src $PY -m napari_fewcell.cli pretrain --data "$D" --exclude "$FOLD" --strategy "$STRAT" \
      --init "$INIT" --steps 100000 --cpu-minutes "${CPU_MINUTES:-12}" --batch 8 --lr 3e-4 --dice-weight 0.5 \
      --swap-p 0.2 --threads 1 --seed 0 --checkpoint-minutes 5 --out "$OUT" "${RESUME[@]}" \
      > "benchmarks/weights/lodo_${SHORT}_${STRAT}_warm.log" 2>&1
  done
done
