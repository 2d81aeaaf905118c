#!/usr/bin/env bash
# Run PagedBench natively (no Docker) on a GPU host whose Python has torch and transformers, with vLLM
# and the project's small dependencies installed into /tmp/site (see README, "Without Docker"). Every run
# is bounded in time so the results are always packed into $OUT.
#
#   scripts/gpu-steps.sh GROUP [GROUP ...]
#   groups: seed seed-vllm default-hf default-vllm capacity gpt2 crosscheck overhead
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=${SITE:-/tmp/site}:$PWD
export PAGEDBENCH_CACHE=${PAGEDBENCH_CACHE:-/tmp/pbcache}
R=${RESULTS:-/tmp/results}
OUT=${OUT:-/tmp/out}
mkdir -p "$R" "$OUT"
T=$(date -u +%H%M%S)  # run ids are unique per invocation: results are never overwritten

pb() {  # pb SECONDS ARGS...: one pagedbench command, stopped with SIGTERM (results kept) past SECONDS
  local limit=$1
  shift
  echo "== $(date -u +%T) pagedbench $* (limit ${limit}s)"
  timeout -s TERM -k 30 "$limit" python3 -m bench "$@"
  local rc=$?
  echo "== $(date -u +%T) exit $rc"
}

for group in "$@"; do
  case $group in
  seed)
    python3 -m bench env --json >"$R/env.json"
    nvidia-smi >"$R/nvidia-smi.txt" 2>&1
    pb 150 run --stack hf --suite seed --out "$R" --run-id seed-hf-$T
    pb 330 run --stack vllm --suite seed --out "$R" --run-id seed-vllm-$T
    ;;
  seed-vllm)
    pb 330 run --stack vllm --suite seed --out "$R" --run-id seed-vllm-$T
    ;;
  default-hf)
    pb 540 run --stack hf --suite default --out "$R" --run-id default-hf-$T \
      --scenario hf-padded-b32 --scenario hf-padded-b128 --scenario hf-static-b32 --scenario hf-paged
    ;;
  default-vllm)
    pb 540 run --stack vllm --suite default --out "$R" --run-id default-vllm-$T --scenario vllm
    ;;
  capacity)
    pb 330 run --stack hf --suite capacity --out "$R" --run-id capacity-hf-$T
    pb 200 run --stack vllm --suite capacity --out "$R" --run-id capacity-vllm-$T
    ;;
  gpt2)
    pb 200 run --stack hf --suite default --model synthetic:gpt2-124m --out "$R" --run-id gpt2-hf-$T \
      --scenario hf-padded-b32 --scenario hf-static-b32
    pb 330 run --stack vllm --suite default --model synthetic:gpt2-124m --out "$R" --run-id gpt2-vllm-$T --scenario vllm
    ;;
  crosscheck)
    pb 300 crosscheck --stack hf --suite default --scenario hf-padded-b128 --repeats 3 --out "$R/crosscheck-hf-$T.json"
    pb 300 crosscheck --stack vllm --suite default --scenario vllm --repeats 3 --out "$R/crosscheck-vllm-$T.json"
    ;;
  overhead)  # the sampler on and off, interleaved, 3 times each
    for i in 1 2 3; do
      pb 120 run --stack hf --suite default --scenario hf-padded-b128 --out "$R" --run-id "overhead-on$i-$T"
      pb 120 run --stack hf --suite default --scenario hf-padded-b128 --out "$R" --run-id "overhead-off$i-$T" --no-sampler
    done
    ;;
  *)
    echo "unknown group $group" >&2
    ;;
  esac
done
tar czf "$OUT/results-$(date -u +%H%M%S).tgz" -C "$R" .
ls -la "$OUT"
