#!/usr/bin/env bash
# Run PagedBench natively (no Docker) on a GPU host whose Python has torch and transformers, with vLLM
# and the project's small dependencies installed into /tmp/site (see docs/running.md, "Without Docker"). Every run
# is bounded in time so the results are always packed into $OUT. The HF-only groups (seed-hf, default-hf,
# capacity-hf, proof-hf, hf-paged, sharing-hf*) need no vLLM: only the project's own dependencies the host lacks.
#
#   [DEADLINE=SECONDS] scripts/gpu-steps.sh GROUP [GROUP ...]
# The groups are the branches of the `case` below; run without one, the script lists them.
# DEADLINE bounds the whole script: each step gets at most what is left, and the results are packed into
# $OUT after every group, so a caller's own time limit never loses what finished.
# The serve cross-check's loads come from XC_RATES (default inf,0.5x,0.9x) and XC_REPEATS (default 3), the
# stub's from STUB_RATES (default 40,70: about half and nine tenths of the H100's saturation). On a fresh
# machine vLLM's server takes up to 4 minutes to start, and all three loads at 3 repeats do not fit one
# 10-minute call: run `inf` alone, then its 0.5x and 0.9x as plain rates.
set -u
# Every group named is checked before any runs: a typo would otherwise surface after the groups before it.
groups=$(sed -n 's/^  \([a-z0-9-]*\)).*/\1/p' "$0" | paste -sd' ' -)
[ $# -gt 0 ] || { echo "gpu-steps.sh: name one group or more: $groups" >&2; exit 2; }
for group in "$@"; do
  [[ " $groups " == *" $group "* ]] || { echo "gpu-steps.sh: no group '$group'; groups: $groups" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
export PYTHONPATH=${SITE:-/tmp/site}:$PWD
export PAGEDBENCH_CACHE=${PAGEDBENCH_CACHE:-/tmp/pbcache}
R=${RESULTS:-/tmp/results}
C=${CROSSCHECKS:-/tmp/crosschecks}
OUT=${OUT:-/tmp/out}
mkdir -p "$R" "$C" "$OUT"
T=$(date -u +%H%M%S)  # run ids are unique per invocation: results are never overwritten
START=$SECONDS

limited() {  # limited SECONDS CMD...: stopped with SIGTERM (results kept) past SECONDS or the DEADLINE
  local limit=$1
  shift
  if [ -n "${DEADLINE:-}" ]; then
    local left=$((DEADLINE - (SECONDS - START) - 40))  # 30 s for a stopped run to write, 10 s to pack
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
      echo "== skipped (deadline): $*"
      return
    fi
  fi
  echo "== $(date -u +%T) $* (limit ${limit}s)"
  timeout -s TERM -k 30 "$limit" "$@"
  local rc=$?
  echo "== $(date -u +%T) exit $rc"
}

pb() {  # pb SECONDS ARGS...: one pagedbench command
  local limit=$1
  shift
  limited "$limit" python3 -m bench "$@"
}

only() {  # only NAME...: --scenario NAME for each
  local name
  for name in "$@"; do printf -- '--scenario %s ' "$name"; done
}

pack() {
  tar czf "$OUT/results.tgz" -C "$(dirname "$R")" "$(basename "$R")" -C "$(dirname "$C")" "$(basename "$C")"
}

for group in "$@"; do
  case $group in
  env)
    python3 -m bench env --json >"$C/env.json"
    nvidia-smi >"$C/nvidia-smi.txt" 2>&1
    ;;
  seed)
    pb 150 run --stack hf --suite seed --out "$R" --run-id seed-hf-$T
    pb 330 run --stack vllm --suite seed --out "$R" --run-id seed-vllm-$T
    ;;
  seed-hf)
    pb 150 run --stack hf --suite seed --out "$R" --run-id seed-hf-$T
    ;;
  seed-vllm)
    pb 330 run --stack vllm --suite seed --out "$R" --run-id seed-vllm-$T
    ;;
  default-hf)
    pb 570 run --stack hf --suite default --out "$R" --run-id default-hf-$T
    ;;
  default-vllm)
    pb 570 run --stack vllm --suite default --out "$R" --run-id default-vllm-$T
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
  capacity-hf)
    pb 330 run --stack hf --suite capacity --out "$R" --run-id capacity-hf-$T
    ;;
  capacity-vllm)
    pb 200 run --stack vllm --suite capacity --out "$R" --run-id capacity-vllm-$T
    ;;
  proof-hf)  # plain loop, PagedBench, PagedBench without the sampler: interleaved, 3 times
    pb 450 crosscheck --stack hf --suite default --scenario hf-padded-b128 --repeats 3 \
      --out "$C/crosscheck-hf-$T.json" --results "$R" --run-id crosscheck-hf-$T
    ;;
  proof-vllm)
    pb 540 crosscheck --stack vllm --suite default --scenario vllm-sustained --repeats 3 --no-overhead \
      --out "$C/crosscheck-vllm-$T.json" --results "$R" --run-id crosscheck-vllm-$T
    ;;
  proof-long)  # the same cross-check where the GPU, not vLLM's host loop, bounds the run (8B, long prompts)
    pb 540 crosscheck --stack vllm --suite long-context --scenario vllm-long --repeats 3 --no-overhead \
      --out "$C/crosscheck-vllm-long-$T.json" --results "$R" --run-id crosscheck-vllm-long-$T
    ;;
  hf-paged)
    pb 150 run --stack hf --suite default --out "$R" --run-id hf-paged-$T --scenario hf-paged
    ;;
  crosscheck)
    pb 300 crosscheck --stack hf --suite default --scenario hf-padded-b128 --repeats 3 --out "$C/crosscheck-hf-$T.json"
    pb 300 crosscheck --stack vllm --suite default --scenario vllm --repeats 3 --out "$C/crosscheck-vllm-$T.json"
    ;;
  variance)  # where vLLM's run-to-run variance comes from: six plain runs on one engine
    limited 540 python3 scripts/vllm_variance.py --runs 6 --out "$C/variance-$T.json"
    ;;
  variance-profile)  # the same, with the engine core's Python stack sampled every 20 ms
    limited 540 python3 scripts/vllm_variance.py --runs 5 --profile-ms 20 --out "$C/variance-profile-$T.json"
    ;;
  sharing-hf)
    pb 570 run --stack hf --suite sharing --out "$R" --run-id sharing-hf-$T
    ;;
  sharing-hf-samples)  # HF's half of the sharing suite in two calls (12 minutes on an H100): n samples, then beams and prefixes
    pb 570 run --stack hf --suite sharing --out "$R" --run-id sharing-hf-samples-$T \
      $(only hf-{alpaca,sharegpt}-n{1,2,4,6})
    ;;
  sharing-hf-alpaca)  # the Alpaca-shaped half of sharing-hf-samples alone
    pb 570 run --stack hf --suite sharing --out "$R" --run-id sharing-hf-alpaca-$T $(only hf-alpaca-n{1,2,4,6})
    ;;
  sharing-hf-sharegpt)  # the ShareGPT-shaped half of sharing-hf-samples alone
    pb 570 run --stack hf --suite sharing --out "$R" --run-id sharing-hf-sharegpt-$T $(only hf-sharegpt-n{1,2,4,6})
    ;;
  sharing-hf-beams)
    pb 570 run --stack hf --suite sharing --out "$R" --run-id sharing-hf-beams-$T \
      $(only hf-{alpaca,sharegpt}-beam{2,4,6} hf-prefix-{0,512,2048} hf-static-{alpaca,sharegpt}-{n4,beam4})
    ;;
  sharing-hf-static)  # HF's static cache on the sharing workloads at n and width 4
    pb 570 run --stack hf --suite sharing --out "$R" --run-id sharing-hf-static-$T \
      $(only hf-static-{alpaca,sharegpt}-{n4,beam4})
    ;;
  hf-first-pass)  # HF's first and later passes over a padded batch: cuDNN attention on, off, on with expandable segments
    limited 480 python3 scripts/hf_first_pass.py --steps "${FP_STEPS:-192}" --out "$C/hf-first-pass-$T.json"
    ;;
  sharing-vllm)
    pb 570 run --stack vllm --suite sharing --out "$R" --run-id sharing-vllm-$T
    python3 scripts/sharing_recompute.py "$R/sharing-vllm-$T" >"$C/sharing-recompute-$T.txt" 2>&1
    ;;
  serving-hf)  # transformers serve needs its serving extras (FastAPI, Uvicorn, accelerate) in the site
    pb 570 serve --stack hf --suite serving --out "$R" --run-id serving-hf-$T
    ;;
  serving-vllm)
    pb 570 serve --stack vllm --suite serving --out "$R" --run-id serving-vllm-$T
    ;;
  serve-crosscheck)  # needs pandas (vllm bench serve's custom data) in the site
    limited 540 python3 scripts/serve_crosscheck.py --suite serving --scenario vllm-serve --requests 1024 \
      --rates "${XC_RATES:-inf,0.5x,0.9x}" --repeats "${XC_REPEATS:-3}" --out "$C/serve-crosscheck-$T.json"
    ;;
  serve-crosscheck-stub)  # both clients against the instant stub at the rates vLLM served: what each adds
    limited 300 python3 scripts/serve_crosscheck.py --suite serving --scenario vllm-serve --stub --itl-ms 2 \
      --rates "${STUB_RATES:-40,70}" --requests 1024 --repeats 2 --out "$C/serve-crosscheck-stub-$T.json"
    ;;
  bench-client)  # the load generator's own capacity against an instant stub, on this host's CPUs
    pb 200 bench-client --out "$C/bench-client-$T.json"
    pb 200 bench-client --requests 1024 --tokens 128 --out "$C/bench-client-t128-$T.json"
    ;;
  multi-gpu)  # two GPUs or more
    pb 570 run --stack vllm --suite multi-gpu --out "$R" --run-id multi-gpu-vllm-$T
    pb 570 run --stack hf --suite multi-gpu --out "$R" --run-id multi-gpu-hf-$T
    ;;
  energy)  # a run's energy against nvidia-smi's own power readings every 100 ms (scripts/energy_crosscheck.py)
    TZ=UTC nvidia-smi --query-gpu=timestamp,index,power.draw.instant --format=csv,nounits -lms 100 \
      >"$C/smi-power-instant-$T.csv" 2>&1 &
    smi_instant=$!
    TZ=UTC nvidia-smi --query-gpu=timestamp,index,power.draw --format=csv,nounits -lms 100 >"$C/smi-power-$T.csv" &
    smi=$!
    pb 300 run --stack vllm --suite default --scenario vllm-sustained --out "$R" --run-id "energy-vllm-$T"
    pb 300 run --stack hf --suite default --scenario hf-padded-b128 --out "$R" --run-id "energy-hf-$T"
    kill "$smi" "$smi_instant" 2>/dev/null
    for f in "$C/smi-power-instant-$T.csv" "$C/smi-power-$T.csv"; do
      python3 scripts/energy_crosscheck.py "$f" "$R/energy-vllm-$T" "$R/energy-hf-$T" >"${f%.csv}-check.txt" 2>&1
    done
    ;;
  overhead)  # the sampler on and off, interleaved, 3 times each
    for i in 1 2 3; do
      pb 120 run --stack hf --suite default --scenario hf-padded-b128 --out "$R" --run-id "overhead-on$i-$T"
      pb 120 run --stack hf --suite default --scenario hf-padded-b128 --out "$R" --run-id "overhead-off$i-$T" --no-sampler
    done
    ;;
  esac
  pack
done
ls -la "$OUT"
