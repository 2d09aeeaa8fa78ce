#!/usr/bin/env bash
# MSD feature extractors of the other labelled sets (issue 21, item 1), for benchmarks/studies/study_extractor_bank.py:
# one binary extractor per set, 12-minute cap on one CPU thread each (the shipped three had 28 minutes).
# A finished extractor is skipped, so the script can be re-run after a cut one (each run is short and restarts).
#   bash benchmarks/weights/extractors.sh [DATA] [OUT]     (defaults: ../shared/data, benchmarks/weights/extractors)
set -euo pipefail
cd "$(dirname "$0")/../.."
D="${1:-../shared/data}"; OUT="${2:-runs/extractors}"
mkdir -p "$OUT"
train() {  # NAME DATASET [options]
  local name="$1" set="$2"; shift 2
  [ -f "$OUT/msd_$name.pt" ] && { echo "msd_$name.pt: done"; return; }
  fewcell train-extractor --data "$D" --dataset "$set" --name "$name" --out "$OUT/msd_$name.pt" \
    --threads 1 --max-epochs 40 --max-minutes 12 "$@"
}
( train phase_cells usiigaci_phase_contrast_cells; train nih3t3_nuclei coelho2009_nih3t3_nuclei ) &
( train tem_axons tem_myelinated_axons
  # Dice alone learnt nothing on cervical cells (best validation Dice 0.49 at epoch 1, stopped at 11): with BCE, as
  # the membrane extractor
  train cervical_cells isbi2014_cervical_synth_cells --bce-weight 1 ) &
wait
