#!/usr/bin/env bash
# Re-make the report's runs on one CUDA GPU (an H100 took about 5 min per 40-epoch run, 12.7 min for 100
# epochs). Usage: site_builder/train/reproduce.sh CIFAR100_DIR   (npz shards or cifar-100-python.tar.gz)
# Writes bench.json, checkpoints/<run>/{last,final}/, wandb/offline-run-*, then exports/runs/<run>/.
set -euo pipefail
DATA=${1:?usage: reproduce.sh CIFAR100_DIR}
python -m site_builder.train.bench --data "$DATA" --json bench.json
for run in lejepa-nano-c100 lejepa-nano-c100-lambda0 infonce-nano-c100; do
  python -m site_builder train --name "$run" --data "$DATA" --epochs 40 --warmup-epochs 3 --device cuda
done
python -m site_builder train --name lejepa-nano-c100-e100 --objective lejepa --lam 0.02 \
  --data "$DATA" --epochs 100 --warmup-epochs 3 --device cuda
python -m site_builder fetch --all-offline wandb/
