#!/bin/bash
# Data-parallel apps/train on 2 GPUs (DDP over NCCL, NVLink multicast off) against 1 GPU, on one
# machine: tokens/s per GPU, loss parity at the same global batch, and checkpoints resumed across
# process counts. Results of the ninth session: benchmarks/results/trainer_ddp_h200x2.jsonl.
# Prepare the two tokenized run directories on any machine first (seconds on a CPU):
#   uv run apps/train tokenize --config tinystories-17m --data ../shared/data/web_mix.txt \
#       --data.max_bytes 20000000 --run RUNS/ts17m
#   uv run apps/train tokenize --config gpt2-small --data ../shared/data/web_mix.txt \
#       --data.max_bytes 20000000 --tokenizer.train_bytes 20000000 --run RUNS/gpt2
# then, from the repository root on the GPU machine: OUT=results bash apps/train/docs/multi_gpu_run.sh RUNS
RUNS=${1:?usage: multi_gpu_run.sh RUNS_DIR (holding ts17m/ and gpt2/)}
OUT=${OUT:?set OUT to a directory for the logs and metrics}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=$(ls -d packages/*/src apps/*/src | paste -sd: -)
T0=$(date +%s); W=${WORK:-/tmp/multi_gpu_runs}; rm -rf "$W"; mkdir -p "$W" "$OUT"
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/timeline.txt; }
python3 -c 'import torch; print(torch.cuda.device_count(), torch.cuda.get_device_name(0), torch.__version__)' | tee $OUT/env.txt
nvidia-smi topo -m > $OUT/topo.txt 2>&1
TS="--train.max_steps 300 --train.log_interval 10 --train.eval_interval 100 --train.checkpoint_interval 300 --optim.warmup_steps 30 --system.attention sdpa"
G2="--train.max_steps 80 --train.log_interval 10 --train.eval_interval 80 --train.checkpoint_interval 80 --optim.warmup_steps 10 --system.attention sdpa"
run() {  # name gpus nproc port cmd args...
  local name=$1 gpus=$2 n=$3 port=$4; shift 4
  CUDA_VISIBLE_DEVICES=$gpus timeout 200 torchrun --nproc_per_node $n --master_port $port apps/train/__main__.py "$@" > $OUT/$name.log 2>&1
  echo "rc=$?" >> $OUT/$name.log
}
keep() { mkdir -p $OUT/$1; cp $W/$1/metrics.jsonl $W/$1/config.toml $OUT/$1/ 2>/dev/null; ls $W/$1/checkpoints > $OUT/$1/checkpoints.txt 2>&1; }
for d in ts17m gpt2; do cp -r $RUNS/$d $W/${d}_1gpu; cp -r $RUNS/$d $W/${d}_2gpu; done
log "phase 1: 17M on GPU 0 and GPT-2 small on GPU 1, one process each"
run ts17m_1gpu 0 1 29501 train --run-dir $W/ts17m_1gpu $TS &
run gpt2_1gpu 1 1 29502 train --run-dir $W/gpt2_1gpu $G2 &
wait; keep ts17m_1gpu; keep gpt2_1gpu; log "phase 1 done"
log "phase 2: 17M on 2 GPUs"
run ts17m_2gpu 0,1 2 29503 train --run-dir $W/ts17m_2gpu $TS; keep ts17m_2gpu; log "phase 2 done"
log "phase 3: cross resume to 350 steps: the 2-GPU checkpoint on 1 GPU, the 1-GPU checkpoint on 2 GPUs"
cp -r $W/ts17m_2gpu $W/resume_2to1; cp -r $W/ts17m_1gpu $W/resume_1to2
run resume_2to1 0 1 29504 resume --run-dir $W/resume_2to1 --train.max_steps 350 --train.log_interval 10; keep resume_2to1; log "2->1 done"
run resume_1to2 0,1 2 29505 resume --run-dir $W/resume_1to2 --train.max_steps 350 --train.log_interval 10; keep resume_1to2; log "1->2 done"
log "phase 4: GPT-2 small on 2 GPUs"
run gpt2_2gpu 0,1 2 29506 train --run-dir $W/gpt2_2gpu $G2; keep gpt2_2gpu; log "phase 4 done"
