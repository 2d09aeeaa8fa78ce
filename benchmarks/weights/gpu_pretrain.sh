#!/usr/bin/env bash
# Pre-training at scale: the all-sets network and one network per leave-one-out fold, side by side on one
# machine (a GPU machine of the device tool, or any CPU: DEVICE=cpu), from the crop bank
# (`fewcell pretrain-bank --data ../shared/data --budget-mpx 7 --out .bank/bank.npz`; the bank stays out of
# git: .git/info/exclude, since not every set's licence allows copying it into the repository).
#
#   bash benchmarks/weights/gpu_pretrain.sh OUT_DIR [MINUTES]         # DEVICE=cuda (default) or cpu; MINUTES default 6.5
#
# WARM=1 starts each run from the CPU-trained weights that never saw its fold (the shipped network for the
# sets it never saw and for all8; benchmarks/weights/lodo_isbi_episodic.pt, benchmarks/weights/lodo_dsb2018he_episodic.pt) with
# LR (default 5e-4) and SCALE (default "0.75 1.33"); otherwise from random weights (lr 2e-3, scale 0.6-1.7).
# INIT_DIR=benchmarks/weights/gpu_warm2 (with WARM=1) continues each run from INIT_DIR/<name>.pt instead: a run continued
# across sessions. BATCH (default 32) episodes per step; BF16=1 runs the forward pass in bfloat16.
#
# Every run is `fewcell pretrain` (episodic, torch sampler, random init) with a wall-time budget: the
# learning rate warms up and decays over that time, and each run checkpoints every 2 minutes
# (resume: the same command with --resume OUT.pt.ckpt). OUT_DIR receives weights.tar (<name>.pt),
# checkpoints.tar (<name>.pt.ckpt) and logs.tgz (<name>.log): the device tool brings back at most 8 files.
# A batch of 128 episodes takes about 22 GiB of GPU memory per run: eight such runs do not fit on one H200.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:?usage: benchmarks/weights/gpu_pretrain.sh OUT_DIR [MINUTES]}"; minutes="${2:-6.5}"
final="$out"; out="$(mktemp -d)"  # runs write here; OUT_DIR gets three tarballs (the device tool returns 8 files)
device="${DEVICE:-cuda}"; bank="${BANK:-.bank/bank.npz}"; py="${PY:-python3}"
mkdir -p "$final"
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
shipped=src/napari_fewcell/weights/fewcell_embed_v1.pt
declare -A inits=([all8]=$shipped [lodo_isbi]=benchmarks/weights/lodo_isbi_episodic.pt [lodo_dsb2018he]=benchmarks/weights/lodo_dsb2018he_episodic.pt
  [lodo_usiigaci]=$shipped [lodo_tem]=$shipped [classout_myelin]=$shipped [lodo_coelho]=$shipped
  [lodo_cervical]=$shipped)
if [ -n "${INIT_DIR:-}" ]; then for name in "${!inits[@]}"; do inits[$name]="$INIT_DIR/$name.pt"; done; fi
if [ "${WARM:-0}" = 1 ]; then lr="${LR:-5e-4}"; scale="${SCALE:-0.75 1.33}"; else lr="${LR:-2e-3}"; scale="${SCALE:-0.6 1.7}"; fi
# shellcheck disable=SC2206
common=(--data "$bank" --strategy episodic --sampler torch --device "$device" --scale $scale
        --batch "${BATCH:-32}" --query-pixels 4096 --key-pixels "${KEYS:-2048}" --lr "$lr" --dice-weight 0.5 --swap-p 0.2
        --invert-p 0.2 --steps 200000 --wall-minutes "$minutes" --checkpoint-minutes 2 --threads 1 --seed "${SEED:-0}"
        $([ "${BF16:-0}" = 1 ] && echo --bf16))
declare -A folds=(
  [all8]=""
  [lodo_isbi]="--exclude isbi2012_membrane"
  [lodo_usiigaci]="--exclude usiigaci_phase_contrast_cells"
  [lodo_dsb2018he]="--exclude dsb2018_he"
  [lodo_tem]="--exclude tem_myelinated_axons"
  [classout_myelin]="--exclude tem_myelinated_axons:labels_myelin"
  [lodo_coelho]="--exclude coelho2009_nih3t3_nuclei"
  [lodo_cervical]="--exclude isbi2014_cervical_synth_cells"
)
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
  torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
pids=()
names=(${FOLDS:-${!folds[@]}})  # FOLDS="lodo_isbi lodo_tem": only these runs
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  timeout -s TERM "$(python3 -c "print(int($minutes * 60 + 90))")" \
    "$py" -m napari_fewcell.cli pretrain "${common[@]}" ${folds[$name]} \
    $([ "${WARM:-0}" = 1 ] && echo "--init ${inits[$name]}") --out "$out/$name.pt" \
    >"$out/$name.log" 2>&1 &
  pids+=($!)
done
fail=0
for pid in "${pids[@]}"; do wait "$pid" || fail=$((fail + 1)); done
for name in "${names[@]}"; do
  echo "== $name: $(tr '\r' '\n' <"$out/$name.log" | grep -v '^$' | tail -n 1)"
done
(cd "$out" && tar cf "$final/weights.tar" ./*.pt; tar cf "$final/checkpoints.tar" ./*.ckpt; tar czf "$final/logs.tgz" ./*.log)
echo "runs failed: $fail"
exit "$fail"
