#!/usr/bin/env bash
# Re-make the report's training runs on one CUDA GPU. Usage: site_builder/train/reproduce.sh CIFAR100_DIR
# (npz shards or cifar-100-python.tar.gz). Writes checkpoints/<run>/{last,final}/ (+ logs), wandb/offline-run-*,
# then exports/runs/<run>/ and exports/sweeps/. Every step resumes: run it again after a stop.
set -euo pipefail
DATA=${1:?usage: reproduce.sh CIFAR100_DIR}
python -m site_builder.train.bench --data "$DATA" --json bench.json
# The report's first runs (40 epochs, one seed; their online probe read the test split: kept for history;
# their exported histories feed the report's training-curve sections, no figures are made from them).
for run in lejepa-nano-c100 lejepa-nano-c100-lambda0 infonce-nano-c100; do
  python -m site_builder train --name "$run" --data "$DATA" --epochs 40 --warmup-epochs 3 --device cuda --eval-test
done
# The validation sweep (site_builder/train/NOTES.md says which runs are done and what follows it).
python -m site_builder.train.sweep site_builder/train/plans/sweep-20ep.toml --data "$DATA"
python -m site_builder fetch --all-offline wandb/
python -m site_builder.train.sweep site_builder/train/plans/sweep-20ep.toml --summarize exports
