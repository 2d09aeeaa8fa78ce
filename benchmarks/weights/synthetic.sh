#!/usr/bin/env bash
# Issue 20, item 3: does pre-training on synthetic structures (engine/training/synthetic.py) make the embedding more
# generic? A network is continued for the same wall time twice, side by side, one thread each: with the synthetic
# families (3 of every 10 episodes) and without them (the control).
#   isbi: the ISBI fold's network (benchmarks/weights/lodo_isbi_episodic.pt, which never saw ISBI) on the other sets
#   v1:   the shipped network on the four sets it was trained on (ISBI, DSB fluorescence and H&E, the StarDist
#         sample): still leave-one-out for usiigaci, TEM axons and myelin, Coelho and cervical cells, and a candidate
#         to ship (its in-domain figures must not regress)
# Resumable: a cut run continues from its checkpoint when the command is run again.
#   bash benchmarks/weights/synthetic.sh isbi|v1 [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${D:-../shared/data}
PY=${PY:-.tox/py/bin/python}
FOLD=${1:?usage: benchmarks/weights/synthetic.sh isbi|v1 [MINUTES]}
MIN=${2:-65}
go() {  # OUT, then pretrain options
  local OUT=$1; shift
  [ -f "$OUT" ] && { echo "$OUT exists: skipped"; return; }
  local RESUME=(); [ -f "$OUT.ckpt" ] && RESUME=(--resume "$OUT.ckpt")
  PYTHONPATH=src $PY -m napari_fewcell.cli pretrain --data "$D" --strategy episodic --lr 5e-4 --steps 100000 \
    --wall-minutes "$MIN" --batch 8 --dice-weight 0.5 --swap-p 0.2 --threads 1 --seed 3 --checkpoint-minutes 5 \
    --out "$OUT" "$@" "${RESUME[@]}" > "${OUT%.pt}.log" 2>&1
}
case $FOLD in
  isbi)
    SETS=(dsb2018_fluo=1 dsb2018_he=1 stardist_sample2d=1 usiigaci_phase_contrast_cells=1
          isbi2014_cervical_synth_cells=1 tem_myelinated_axons=1 coelho2009_nih3t3_nuclei=1)
    FROM=(--exclude isbi2012_membrane --init benchmarks/weights/lodo_isbi_episodic.pt)
    go benchmarks/weights/lodo_isbi_synth.pt "${FROM[@]}" --datasets "${SETS[@]}" synthetic=3 &
    go benchmarks/weights/lodo_isbi_cont.pt "${FROM[@]}" --datasets "${SETS[@]}" & ;;
  v1)
    SETS=(isbi2012_membrane=0.35 dsb2018_fluo=0.3 dsb2018_he=0.2 stardist_sample2d=0.15)
    FROM=(--init src/napari_fewcell/weights/fewcell_embed_v1.pt)
    go benchmarks/weights/v1_synth.pt "${FROM[@]}" --datasets "${SETS[@]}" synthetic=0.43 &
    go benchmarks/weights/v1_cont.pt "${FROM[@]}" --datasets "${SETS[@]}" & ;;
  *) echo "usage: benchmarks/weights/synthetic.sh isbi|v1 [MINUTES]"; exit 2 ;;
esac
wait
