#!/usr/bin/env bash
# The ablation and model-size runs of docs/results.md: configs/ablation/base.yaml (1 epoch, 1 thread)
# with one idea switched off per run, two runs side by side on a 2-core machine.
# Usage: bash scripts/run_ablation.sh [runs/ablation]
set -u
out=${1:-runs/ablation}
mkdir -p "$out"
declare -A variants=(
  [full]=""
  [no_qamem]="model.qamem=false"
  [no_marr]="model.marr=false"
  [no_euler]="loss.euler=0"
  [no_cross_branch]="model.cross_branch=false"
  [no_3dmm_branch]="model.param_branch=false loss.param=0 loss.vertex=0 loss.cross_branch=0 loss.euler=0"
  [plus_human_labels]="loss.human_landmark=1.0"
  [size_small]="model.dim=32 model.num_layers=1 model.ffn_dim=64 model.num_heads=2"
  [size_large]="model.dim=128 model.num_layers=3 model.ffn_dim=256"
)
order=(full no_qamem no_marr no_euler no_cross_branch no_3dmm_branch plus_human_labels size_small size_large)
run() {
  local name=$1
  [ -f "$out/$name/checkpoints/last.ckpt" ] && { echo "skip $name (done)"; return; }
  rm -rf "$out/$name"
  trans3dhead train --config configs/ablation/base.yaml --run-dir "$out/$name" --no-progress \
    name=$name ${variants[$name]} > "$out/$name.log" 2>&1
  echo "done $name: $(grep validation "$out/$name.log" | tail -1)"
}
for ((i = 0; i < ${#order[@]}; i += 2)); do
  run "${order[i]}" &
  [ $((i + 1)) -lt ${#order[@]} ] && run "${order[i + 1]}" &
  wait
done
