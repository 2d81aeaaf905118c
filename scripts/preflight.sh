#!/usr/bin/env bash
# Before a GPU run: is the driver new enough for the CUDA variant, and is the GPU free?
#   scripts/preflight.sh CUDA_VARIANT GPU_INDEX     (STRICT_GPU=1 refuses a GPU that others use)
set -u
variant=${1:-cu130}
gpu=${2:-0}
declare -A min_driver=([cu130]=580 [cu128]=570)
need=${min_driver[$variant]:-}
if [ -z "$need" ]; then
  echo "preflight: unknown CUDA variant '$variant'; allowed: ${!min_driver[*]}" >&2
  exit 2
fi
smi=${NVIDIA_SMI:-nvidia-smi}  # overridable for tests
if ! command -v "$smi" >/dev/null 2>&1; then
  echo "preflight: nvidia-smi not found: install the NVIDIA driver (>= $need for $variant) and the NVIDIA container toolkit" >&2
  exit 2
fi
driver=$("$smi" --query-gpu=driver_version --format=csv,noheader -i "$gpu" 2>/dev/null | head -n1 | tr -d ' ')
if [ -z "$driver" ]; then
  echo "preflight: nvidia-smi sees no GPU with index $gpu" >&2
  exit 2
fi
major=${driver%%.*}
if [ "$major" -lt "$need" ]; then
  alt=""
  for v in cu130 cu128; do
    if [ "$major" -ge "${min_driver[$v]}" ]; then alt=$v; break; fi
  done
  echo "preflight: driver $driver is too old for $variant (needs >= $need)." >&2
  if [ -n "$alt" ]; then
    echo "  use the $alt variant:  make bench CUDA=$alt" >&2
  else
    echo "  no variant supports it: upgrade the driver to >= ${min_driver[cu128]}" >&2
  fi
  exit 2
fi
name=$("$smi" --query-gpu=name --format=csv,noheader -i "$gpu" | head -n1)
echo "preflight: GPU $gpu $name, driver $driver: ok for $variant"
busy=$("$smi" --query-compute-apps=pid,used_memory --format=csv,noheader -i "$gpu" 2>/dev/null | grep -c . || true)
if [ "${busy:-0}" -gt 0 ]; then
  echo "preflight: $busy other process(es) hold memory on GPU $gpu; their use would pollute the figures:" >&2
  "$smi" --query-compute-apps=pid,process_name,used_memory --format=csv,noheader -i "$gpu" >&2
  if [ "${STRICT_GPU:-0}" = 1 ]; then
    echo "preflight: STRICT_GPU=1: stopping" >&2
    exit 3
  fi
  echo "preflight: continuing (set STRICT_GPU=1 to stop instead); each result records the other processes" >&2
fi
