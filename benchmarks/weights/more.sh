#!/usr/bin/env bash
# The other folds and the shipped model of the generalisation issue (after benchmarks/weights/compare.sh). Resumable like it.
#   bash benchmarks/weights/more.sh dsb_he | myelin STRATEGY | all8 STRATEGY
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${D:-../shared/data}
PY=${PY:-.tox/py/bin/python}
INIT=src/napari_fewcell/weights/fewcell_embed_v1.pt
go() {  # OUT, then pretrain options
  local OUT=$1; shift
  [ -f "$OUT" ] && { echo "$OUT exists: skipped"; return; }
  local RESUME=(); [ -f "$OUT.ckpt" ] && RESUME=(--resume "$OUT.ckpt")
  PYTHONPATH=src $PY -m napari_fewcell.cli pretrain --data "$D" --steps 100000 --batch 8 --dice-weight 0.5 \
    --swap-p 0.2 --threads 1 --seed 0 --checkpoint-minutes 5 --out "$OUT" "$@" "${RESUME[@]}" > "${OUT%.pt}.log" 2>&1
}
case $1 in
  # dsb2018_he fold: every shipped or earlier weights file saw dsb2018_he, so this one starts from random weights
  dsb_he) go benchmarks/weights/lodo_dsb2018he_episodic.pt --exclude dsb2018_he --strategy episodic --lr 1e-3 \
            --cpu-minutes "${CPU_MINUTES:-30}" ;;
  # class-out fold: the TEM images with their axon labels, never labels_myelin; the shipped weights never saw TEM
  myelin) go "benchmarks/weights/classout_myelin_$2_warm.pt" --exclude tem_myelinated_axons:labels_myelin --strategy "$2" \
            --init $INIT --lr 3e-4 --cpu-minutes "${CPU_MINUTES:-12}" ;;
  # the candidate shipped model: all eight sets, every label folder; ISBI and DSB fluorescence sampled more
  # (the shipped model's two benchmarks must not regress), the other six sets once each
  all8) go "benchmarks/weights/all8_$2_warm.pt" --strategy "$2" --init $INIT --lr 3e-4 --cpu-minutes "${CPU_MINUTES:-24}" \
          --datasets isbi2012_membrane=2 dsb2018_fluo=1.5 dsb2018_he=1 stardist_sample2d=1 \
          usiigaci_phase_contrast_cells=1 isbi2014_cervical_synth_cells=1 tem_myelinated_axons=1 \
          coelho2009_nih3t3_nuclei=1 ;;
esac
