#!/usr/bin/env bash
# One lease of a GPU machine (16 CPU cores, one NVIDIA GPU), used twice over:
#   cores 0-1 + the GPU: speed benchmarks (Atari side by side with a CleanRL-style DQN; the SAC update
#                        eager and under torch.compile; the whole SAC loop on the GPU), one at a time;
#   cores 2-15:          HalfCheetah-v5 training runs on the CPU, one thread each, checkpointing every
#                        5,000 steps so that they can be resumed elsewhere (--resume).
# Writes to $OUT (default ./gpu_out): bench.log, training.tar (logs, TensorBoard, results) and the
# checkpoints of the runs listed in KEEP. Needs the packages of requirements.txt (the machine here had
# them carried as wheels) and stable-baselines3 for the DQN reference. Ran on 2026-11-26 (H200) as
# `TRAIN_SECONDS=420 bash scripts/gpu_session.sh`; its log is results/gpu/2026-11-26_session.log.
set -u
OUT=${OUT:-$PWD/gpu_out}
REPO=$PWD
TRAIN_SECONDS=${TRAIN_SECONDS:-460}
mkdir -p "$OUT" /tmp/train
export PYTHONUNBUFFERED=1 MUJOCO_GL=disable  # no rendering; with egl, `import mujoco` failed there (no EGL library)
exec > >(tee "$OUT/bench.log") 2>&1

date; nproc; nvidia-smi -L; python3 -c "import torch, gymnasium, mujoco, ale_py; print(torch.__version__, torch.cuda.get_device_name(), gymnasium.__version__, mujoco.__version__, ale_py.__version__)"
grep -m1 "model name" /proc/cpuinfo

# ---- training runs (background, CPU) ------------------------------------------------------------
core=2
pids=()
launch() {  # name, script, flags...
    local name=$1 script=$2
    shift 2
    mkdir -p "/tmp/train/$name"
    (cd "/tmp/train/$name" && OMP_NUM_THREADS=1 taskset -c $core timeout "$TRAIN_SECONDS" \
        python3 "$REPO/$script" --no-cuda "$@" >log.txt 2>&1) &
    pids+=($!)
    core=$((core + 1))
}
SQIL="--env-id HalfCheetah-v5 --total-timesteps 300000 --eval-frequency 10000 --checkpoint-frequency 5000"
for seed in 2 3; do launch "SQIL__HalfCheetah-v5__25demos__$seed" sqil_sac_continuous.py $SQIL --seed $seed; done
for seed in 1 2 3; do launch "SQIL__HalfCheetah-v5__5demos__$seed" sqil_sac_continuous.py $SQIL --num-demos 5 --seed $seed; done
for seed in 1 2 3; do
    launch "SQIL-alpha0.2__HalfCheetah-v5__1demos__$seed" sqil_sac_continuous.py $SQIL --num-demos 1 --no-autotune --alpha 0.2 --seed $seed
done
for seed in 2 3; do
    for demos in 25 5 1; do launch "BC__HalfCheetah-v5__${demos}demos__$seed" bc.py --env-id HalfCheetah-v5 --num-demos $demos --seed $seed; done
done

# ---- benchmarks (foreground, cores 0-1 and the GPU) ----------------------------------------------
bench() { echo "== $*"; timeout "$1" taskset -c 0,1 "${@:2}"; echo "== exit $?"; }
bench 60 python3 collect_demos.py --env-id BreakoutNoFrameskip-v4 --num-episodes 4 --out /tmp/breakout.npz
bench 170 python3 scripts/bench_dqn_atari.py --device cuda --demo-path /tmp/breakout.npz \
    --total-timesteps 6000 --learning-starts 1000 --train-frequency 1 4
bench 150 python3 scripts/bench_sac_update.py --device cuda --steps 1000 --threads 1 --compile default reduce-overhead
for source in sqil env; do
    bench 60 python3 sqil_sac_continuous.py --env-id HalfCheetah-v5 --reward-source $source --total-timesteps 9000 \
        --learning-starts 5000 --eval-frequency 0 --final-eval-episodes 1
done
nvidia-smi --query-gpu=name,memory.used --format=csv

wait "${pids[@]}"  # (a plain `wait` would also wait for the tee above, forever)
date
cd /tmp/train && tar --exclude=checkpoints -cf "$OUT/training.tar" . && ls -la */checkpoints
for name in ${KEEP:-SQIL__HalfCheetah-v5__25demos__2 SQIL__HalfCheetah-v5__25demos__3 SQIL__HalfCheetah-v5__5demos__1}; do
    cp /tmp/train/$name/checkpoints/*.pt "$OUT/ckpt__$name.pt"
done
for f in /tmp/train/*/log.txt; do echo "== $f"; tail -3 "$f"; done
