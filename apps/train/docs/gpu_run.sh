#!/usr/bin/env bash
# The GPU figures of apps/train/README.md: the tinystories-17m config on a <= 60 MB real-text slice.
#
# 1. On any machine (CPU is fine), tokenize once into a run directory:
#      uv run apps/train tokenize --config tinystories-17m --data DIR --data.max_bytes 60000000 \
#          --run .devcarry/runs/ts17m
# 2. On the GPU machine, from the repository root (no uv needed; its own torch + triton):
#      bash apps/train/docs/gpu_run.sh .devcarry/runs/ts17m 300 OUT_DIR
#    A 60-step probe on a scratch copy measures tokens/s after torch.compile's warm-up; the real
#    run then gets as many steps as fit TRAIN_SECONDS at that speed, with the full warmup +
#    cosine schedule over exactly those steps. Its metrics, loss.png and a sample go to OUT_DIR.
set -euo pipefail
RUN=$1
TRAIN_SECONDS=$2
OUT_DIR=$3
export PYTHONPATH=$(ls -d packages/*/src apps/*/src | paste -sd: -)
export PYTHONUNBUFFERED=1
APP="python3 apps/train/__main__.py"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

# The probe also decides the attention kernel: Triton FlashAttention under torch.compile if that
# works here, else torch SDPA (the app's own fallback covers a kernel that fails to load, not a
# compile error mid-run).
PROBE=/tmp/probe_run
EXTRA=""
for attempt in "" "--system.attention sdpa"; do
  rm -rf "$PROBE" && mkdir -p "$PROBE"
  cp -r "$RUN/tokenizer" "$RUN/data" "$RUN/config.toml" "$PROBE/"
  if $APP train --run "$PROBE" --train.max_steps 60 --train.log_interval 10 \
      --train.eval_interval 60 --train.checkpoint_interval 0 $attempt "${@:4}" \
      > "$OUT_DIR/probe.log" 2>&1; then
    EXTRA=$attempt
    break
  fi
  echo "probe failed with options '$attempt':"; tail -5 "$OUT_DIR/probe.log"
done
cat "$OUT_DIR/probe.log"
TOKENS_PER_S=$(python3 -c "
import json, statistics
records = [json.loads(line) for line in open('$PROBE/metrics.jsonl')]
speeds = [r['tokens_per_s'] for r in records if 'tokens_per_s' in r][2:]  # after compile
print(int(statistics.median(speeds)))")
TOKENS_PER_STEP=$(python3 -c "
import tomllib; c = tomllib.load(open('$RUN/config.toml', 'rb'))
print(c['train']['batch_size'] * c['model']['context_length'])")
STEPS=$((TRAIN_SECONDS * TOKENS_PER_S / TOKENS_PER_STEP))
echo "probe: ${TOKENS_PER_S} tokens/s -> ${STEPS} steps for ${TRAIN_SECONDS} s of training"

$APP train --run "$RUN" --train.max_steps "$STEPS" --train.eval_interval $((STEPS / 10)) \
    --train.log_interval 50 --train.checkpoint_interval "$STEPS" \
    --optim.warmup_steps $((STEPS / 20)) $EXTRA "${@:4}" 2>&1 | tee "$OUT_DIR/train.log"
$APP generate --run "$RUN" --prompt "Once upon a time" --max-new-tokens 200 --temperature 0.8 \
    2>&1 | tee "$OUT_DIR/sample.txt"
cp "$RUN/metrics.jsonl" "$RUN/loss.png" "$RUN/config.toml" "$OUT_DIR/"
