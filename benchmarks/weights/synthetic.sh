#!/usr/bin/env bash
# Issue 20, item 3: does pre-training on synthetic structures (engine/training/synthetic.py) make the embedding more
# generic? The ISBI fold's network (benchmarks/weights/lodo_isbi_episodic.pt, which never saw ISBI) is continued for the
# same wall time twice, side by side, one thread each: with the synthetic families (3 of every 10 episodes) and
# without them (the control). Resumable: a cut run continues from its checkpoint when the command is run again.
#   bash benchmarks/weights/synthetic.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${D:-../shared/data}
PY=${PY:-.tox/py/bin/python}
MIN=${1:-65}
OTHERS=(dsb2018_fluo dsb2018_he stardist_sample2d usiigaci_phase_contrast_cells isbi2014_cervical_synth_cells
        tem_myelinated_axons coelho2009_nih3t3_nuclei)
go() {  # OUT, then pretrain options
  local OUT=$1; shift
  [ -f "$OUT" ] && { echo "$OUT exists: skipped"; return; }
  local RESUME=(); [ -f "$OUT.ckpt" ] && RESUME=(--resume "$OUT.ckpt")
  PYTHONPATH=src $PY -m napari_fewcell.cli pretrain --data "$D" --exclude isbi2012_membrane --strategy episodic \
    --init benchmarks/weights/lodo_isbi_episodic.pt --lr 5e-4 --steps 100000 --wall-minutes "$MIN" --batch 8 \
    --dice-weight 0.5 --swap-p 0.2 --threads 1 --seed 3 --checkpoint-minutes 5 --out "$OUT" "$@" "${RESUME[@]}" \
    > "${OUT%.pt}.log" 2>&1
}
go benchmarks/weights/lodo_isbi_synth.pt --datasets "${OTHERS[@]/%/=1}" synthetic=3 &
go benchmarks/weights/lodo_isbi_cont.pt --datasets "${OTHERS[@]/%/=1}" &
wait
