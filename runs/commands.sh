#!/usr/bin/env bash
# The pre-training runs of the generalisation issue (leave-one-data-set-out folds). Each is resumable:
# append `--resume runs/NAME.pt.ckpt` to continue it from its last checkpoint.
set -euo pipefail
D=${D:-../shared/data}
# ISBI fold: every task of the other seven sets, episodic (paper 000), foreground/background swaps
fewcell pretrain --data $D --exclude isbi2012_membrane --strategy episodic --steps 3000 --batch 8 \
    --dice-weight 0.5 --swap-p 0.2 --threads 1 --seed 0 --out runs/lodo_isbi_episodic.pt "$@"
# usiigaci fold (phase contrast): the same recipe without usiigaci; started at the end of a session and
# stopped after a few hundred steps: continue with `--resume runs/lodo_usiigaci_episodic.pt.ckpt`
fewcell pretrain --data $D --exclude usiigaci_phase_contrast_cells --strategy episodic --steps 3000 --batch 8 \
    --dice-weight 0.5 --swap-p 0.2 --threads 2 --seed 0 --out runs/lodo_usiigaci_episodic.pt "$@"
