#!/usr/bin/env bash
# Re-make the report's training runs on one CUDA GPU. Usage: site_builder/train/reproduce.sh CIFAR100_DIR
# (npz shards or cifar-100-python.tar.gz). Writes checkpoints/<run>/{last,final}/ (+ logs), wandb/offline-run-*,
# then exports/runs/<run>/, exports/sweeps/ and exports/derived/. Every step resumes or skips finished runs:
# run it again after a stop. The experiments chapter ("Reproducing these results") lists the same steps.
set -euo pipefail
DATA=${1:?usage: reproduce.sh CIFAR100_DIR}
P=site_builder/train/plans
# Speed of the training step at the final recipe (2 x 32 + 4 x 24 px views), as in NOTES.md.
python -m site_builder.train.bench --data "$DATA" --local-views 4 --local-size 24 --only "compiled loss" --json bench.json
# The report's first runs (40 epochs, one seed; their online probe read the test split: kept for history;
# their exported histories feed the report's training-curve sections, no figures are made from them).
for run in lejepa-nano-c100 lejepa-nano-c100-lambda0 infonce-nano-c100; do
  python -m site_builder train --name "$run" --data "$DATA" --epochs 40 --warmup-epochs 3 --device cuda --eval-test
done
# The protocol: validation sweep, best combinations, final comparison (the only runs that read test).
python -m site_builder.train.sweep $P/sweep-20ep.toml --data "$DATA"
python -m site_builder fetch --all-offline wandb/
python -m site_builder.train.sweep $P/sweep-20ep.toml --combine exports --write $P/combine-20ep.toml
python -m site_builder.train.sweep $P/combine-20ep.toml --data "$DATA"
python -m site_builder fetch --all-offline wandb/
python -m site_builder.train.sweep $P/sweep-20ep.toml $P/combine-20ep.toml --final exports --write $P/final-20ep.toml
python -m site_builder.train.sweep $P/final-20ep.toml --data "$DATA"
# The ViT-S/16 at 224 px.
python -m site_builder.train.sweep $P/vit-s16-224.toml --data "$DATA"
python -m site_builder fetch --all-offline wandb/
python -m site_builder.train.sweep $P/sweep-20ep.toml $P/combine-20ep.toml --summarize exports
python -m site_builder.report_numbers
