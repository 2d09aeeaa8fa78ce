#!/usr/bin/env bash
# Pre-training throughput, to measure before any long GPU run (docs/models.md, "The torch sampler cuts a batch at
# once"): for each configuration "PROCESSES×BATCH" the same `fewcell pretrain` as gpu_pretrain.sh (episodic, torch
# sampler, from the crop bank, all sets) runs for MINUTES in PROCESSES processes at once; each run's card gives its
# steps and seconds, and the table sums the episodes a second of the processes.
#
#   bash benchmarks/weights/gpu_throughput.sh OUT_DIR [MINUTES]     # CONFIGS (default "1x32 1x128 8x128"), BF16=1,
#                                                                   # DEVICE (default cuda), BANK, PY
# OUT_DIR receives throughput.md (and the runs' logs in logs.tgz); no weights are kept.
set -uo pipefail
cd "$(dirname "$0")/../.."
final="${1:?usage: benchmarks/weights/gpu_throughput.sh OUT_DIR [MINUTES]}"; minutes="${2:-1}"
device="${DEVICE:-cuda}"; bank="${BANK:-.bank/bank.npz}"; py="${PY:-python3}"
work="$(mktemp -d)"; mkdir -p "$final"
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
table="$final/throughput.md"
{
  echo "# Pre-training throughput ($device, $minutes min per configuration, $(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  "$py" -c "import torch; print('- torch', torch.__version__, '·', torch.cuda.get_device_name() \
    if torch.cuda.is_available() else 'no GPU')"
  echo "- bf16: ${BF16:-0}; bank: $bank"
  echo
  echo "| processes × batch | steps per process | episodes a second, all processes |"
  echo "|---|---|---|"
} >"$table"
for config in ${CONFIGS:-1x32 1x128 8x128}; do
  procs="${config%x*}"; batch="${config#*x}"; pids=()
  for i in $(seq 1 "$procs"); do
    "$py" -m napari_fewcell.cli pretrain --data "$bank" --strategy episodic --sampler torch --device "$device" \
      --scale 0.75 1.33 --batch "$batch" --query-pixels 4096 --key-pixels 2048 --lr 5e-4 --steps 1000000 \
      --wall-minutes "$minutes" --checkpoint-minutes 1000 --threads 1 --seed "$i" \
      $([ "${BF16:-0}" = 1 ] && echo --bf16) --out "$work/${config}_$i.pt" >"$work/${config}_$i.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  "$py" - "$work" "$config" "$batch" >>"$table" <<'EOF'
import glob, sys, torch
work, config, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
cards = [torch.load(p, weights_only=True)["card"] for p in sorted(glob.glob(f"{work}/{config}_*.pt"))]
steps = [c["steps_done"] for c in cards]
rate = sum(c["steps_done"] * batch / c["train_seconds"] for c in cards)
print(f"| {config.replace('x', ' × ')} | {', '.join(map(str, steps)) or 'none finished'} | {rate:.0f} |")
EOF
done
(cd "$work" && tar czf "$final/logs.tgz" ./*.log)
cat "$table"
