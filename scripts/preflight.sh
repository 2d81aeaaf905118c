#!/usr/bin/env bash
# Before a run: does Docker answer, and on a GPU host is the driver new enough for the CUDA variant, does
# the NVIDIA container toolkit give containers the GPU, and is the GPU free?
#   DEVICE=gpu|cpu [DEVICE_ASKED=auto] [SUITE=S] [MODEL=M] [CUDA=cu130] [RESULTS=./results] [GPU=0] [GPUS_HF=0] [GPUS_VLLM=0] \
#     [PARALLEL=0] [COMMAND=run] [RUN_ID=ID] [GPU_HOUR_PRICE=P] [SHM_SIZE=16gb] [PIP_CA=F] [WHEELHOUSE=D] [HF_BASE= VLLM_BASE= PYTHON_BASE=] scripts/preflight.sh VARIANT GPU_INDEX [IMAGE]
# IMAGE runs nvidia-smi through the toolkit (the HF base, which the build pulls anyway). STRICT_GPU=1
# refuses a GPU that other processes use. PARALLEL=1 (both stacks at once) needs disjoint GPUS_HF and
# GPUS_VLLM. Exit 2: something to install or fix; 3: the GPU is busy.
set -u
variant=${1:-cu130}
gpu=${2:-0}
image=${3:-}
device=${DEVICE:-gpu}
docker=${DOCKER:-docker}   # overridable for tests
smi=${NVIDIA_SMI:-nvidia-smi}

docker_answers() { "$(dirname "$0")/docker-answers.sh" preflight || exit; }

# Every knob is checked before Docker is asked, so that a mistake costs seconds, not a build, and all the
# mistakes of one command line are told at once: one line each, then exit 2.
problems=()
problem() { problems+=("preflight: $*"); }

# The containers see RESULTS as /results: a knob naming /results/NAME needs RESULTS/NAME on this host.
results=${RESULTS:-./results}
under_results() {  # under_results KNOB VALUE WHAT [HINT]
  [ -e "$results/${2#/results/}" ] || problem "$1=$2: no such $3 $results/${2#/results/}${4:+ ($4)}"
}

# SUITE: a built-in suite's name, or a file of the user's own under RESULTS, given as /results/NAME.
suites_dir=$(dirname "$0")/../bench/suites
suite=${SUITE:-}
case $suite in
"") ;;
/results/*) under_results SUITE "$suite" file "a suite of your own goes in RESULTS, named /results/FILE" ;;
*)
  if [ ! -f "$suites_dir/$suite.yaml" ]; then
    known=$(cd "$suites_dir" && ls -1 *.yaml | sed 's/\.yaml$//' | paste -sd, - | sed 's/,/, /g')
    problem "SUITE=$suite: no such suite; built in: $known (or a file of your own: SUITE=/results/FILE.yaml)"
  fi
  ;;
esac

# RESULTS: a directory this user can write in, or one that can be made (make bench makes it).
place=$results
while [ ! -e "$place" ] && [ "$place" != / ] && [ "$place" != . ]; do place=$(dirname "$place"); done
if [ -e "$results" ] && [ ! -d "$results" ]; then
  problem "RESULTS=$results is a file: give a directory for the results (made where missing)"
elif ! made=$(mktemp -d "$place/.pagedbench-XXXXXX" 2>/dev/null); then
  problem "RESULTS=$results: no directory can be made in $place here: give a directory you can write in"
else
  rmdir "$made"
fi

# MODEL: a preset (synthetic:NAME), a hub id, or a directory the containers see: under RESULTS, or one a
# compose file of the user's own (in COMPOSE_FILE) mounts. A directory of this host that no compose file
# names is refused with where to put it.
model=${MODEL:-}
case $model in
synthetic:*)
  # the presets' names, as bench/models/presets.py defines them
  presets=$(sed -n 's/^ *name="\([^"]*\)",$/\1/p' "$(dirname "$0")/../bench/models/presets.py" | sort)
  preset=${model#synthetic:}
  if ! [[ $model =~ ^synthetic:[A-Za-z0-9_.-]+(@[0-9]+)?$ ]] || ! grep -qxF -- "${preset%@*}" <<<"$presets"; then
    problem "MODEL=$model: not a preset; give synthetic:NAME[@SEED], SEED digits, NAME one of $(paste -sd, - <<<"$presets" | sed 's/,/, /g')"
  fi
  ;;
/results/*) under_results MODEL "$model" directory ;;
/* | ./* | ../*)
  # mounted where a volume's container side is MODEL: "HOST:MODEL[:ro]" or "target: MODEL"
  esc=$(printf '%s' "$model" | sed 's/[][\.*^$+?(){}|]/\\&/g')
  end="([]\"' },]|$)"
  named=0
  IFS=: read -ra files <<<"${COMPOSE_FILE:-compose.yaml}"
  for f in "${files[@]}"; do
    grep -qE -- ":$esc(:[A-Za-z,]+)?$end|target:[[:space:]]*[\"']?$esc$end" "$f" 2>/dev/null && named=1
  done
  where="copy it under $results and give MODEL=/results/<its name>, or mount it with a compose file of your own (docs/running.md: Picking a model)"
  if [ "$named" = 1 ]; then
    :
  elif [ -d "$model" ]; then
    problem "MODEL=$model is a directory of this host, which the containers do not see: $where"
  elif [ -e "$model" ]; then
    problem "MODEL=$model is a file: give the directory that holds the model's config.json, weights and tokenizer"
  else
    problem "MODEL=$model: no such directory here, and no compose file in COMPOSE_FILE mounts it: $where"
  fi
  ;;
"") ;;
*)
  # a hub id, as bench/models/reference.py's _HUB_ID takes it
  if ! [[ $model =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$ ]]; then
    problem "MODEL=$model: neither a hub id (owner/name), a directory (/results/NAME) nor a preset (synthetic:NAME)"
  fi
  ;;
esac

# The other knobs' forms.
declare -A min_driver=([cu130]=580 [cu128]=570) # the CUDA variants, and the driver each needs
cuda=${CUDA-cu130}
if [ -z "$cuda" ] || [ -z "${min_driver[$cuda]:-}" ]; then
  variants=$(for v in "${!min_driver[@]}"; do echo "$v (NVIDIA driver >= ${min_driver[$v]})"; done | sort -r | paste -sd, -)
  problem "CUDA=$cuda: give one of ${variants//,/, }"
fi
case ${DEVICE_ASKED:-auto} in auto | gpu | cpu) ;; *) problem "DEVICE=$DEVICE_ASKED: give auto, gpu or cpu" ;; esac
case ${PARALLEL:-0} in 0 | 1) ;; *) problem "PARALLEL=$PARALLEL: give 0 (one stack after the other) or 1 (both at once)" ;; esac
case ${COMMAND:-run} in run | serve) ;; *) problem "COMMAND=$COMMAND: give run (offline) or serve (each stack's server)" ;; esac
# COMMAND=serve runs the suite's serving plan (its `serving:` section): a suite without one serves nothing.
case $suite in
"") suite_file="" ;;
/results/*) suite_file=$results/${suite#/results/} ;;
*) suite_file=$suites_dir/$suite.yaml ;;
esac
if [ "${COMMAND:-run}" = serve ] && [ -f "$suite_file" ] && ! grep -q '^serving:' "$suite_file"; then
  problem "COMMAND=serve: suite $suite has no serving plan (a 'serving:' section); SUITE=serving has one"
fi
for knob in GPU GPUS_HF GPUS_VLLM; do
  value=${!knob-0}
  [ -z "$value" ] && continue # told below
  if ! [[ $value =~ ^[0-9]+(,[0-9]+)*$ ]]; then
    problem "$knob=$value: give a GPU index or a comma-separated list of them (0 or 0,1)"
  elif twice=$(tr , '\n' <<<"$value" | sed 's/^0*\([0-9]\)/\1/' | sort | uniq -d | paste -sd, -) && [ -n "$twice" ]; then
    problem "$knob=$value: GPU $twice named more than once: give each GPU once"
  fi
done
price=${GPU_HOUR_PRICE:-}
if [ -n "$price" ] && ! awk -v p="$price" 'BEGIN { exit !(p ~ /^([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$/ && p + 0 > 0 && p + 0 <= 1e6) }'; then
  problem "GPU_HOUR_PRICE=$price: give the price of one GPU-hour, a number above 0 and at most 1000000 (e.g. 2.49), in any currency"
fi
shm=${SHM_SIZE:-}
if [ -n "$shm" ] && ! [[ ${shm,,} =~ ^[0-9]+(b|k|kb|m|mb|g|gb)?$ ]] || [ "${shm:-1}" = 0 ]; then
  problem "SHM_SIZE=$shm: give the containers' shared memory as a size, e.g. 16gb or 512m"
fi
if [ -n "${PIP_CA:-}" ] && [ ! -f "$PIP_CA" ]; then
  problem "PIP_CA=$PIP_CA: no such file (the CA bundle pip in the build should trust)"
fi
if [ -n "${WHEELHOUSE:-}" ] && ! compgen -G "$WHEELHOUSE/*.whl" >/dev/null; then
  problem "WHEELHOUSE=$WHEELHOUSE: no .whl files there (a directory of wheels pip in the build may take)"
fi
run_id=${RUN_ID:-}
if [ -n "$run_id" ] && ! [[ $run_id =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$ ]]; then
  problem "RUN_ID=$run_id: give a directory name of letters, digits, '.', '_' and '-' (up to 100, starting with a letter or digit)"
fi

# A knob make always passes, given empty (SUITE=): compose would put its own default in its place and make
# its paths without it (RESULTS= would make /RUN_ID at the root, RUN_ID= write into RESULTS itself). Unset
# (preflight run by hand), each is the default.
declare -A defaults=([SUITE]="default, smoke on a CPU" [RESULTS]=./results [RUN_ID]="the time, UTC"
  [COMMAND]="run, serve for SUITE=serving" [GPU]=0 [GPUS_HF]=GPU [GPUS_VLLM]=GPU [DEVICE_ASKED]=auto)
for knob in SUITE RESULTS RUN_ID COMMAND GPU GPUS_HF GPUS_VLLM DEVICE_ASKED; do
  if [ -n "${!knob+set}" ] && [ -z "${!knob}" ]; then
    [[ $knob == GPUS_* && -n ${GPU+set} && -z $GPU ]] && continue # they follow GPU, told once
    problem "${knob%_ASKED}= is empty: give a value, or leave it out for its default (${defaults[$knob]})"
  fi
done

# PARALLEL=1 runs the two stacks at the same time: on GPU sets that share no GPU, never on the CPU variant.
if [ "${PARALLEL:-0}" = 1 ]; then
  if [ "$device" = cpu ]; then
    problem "PARALLEL=1 runs the stacks at once on disjoint GPUs; the CPU variant has none (the stacks would share the CPU)"
  else
    shared=$(comm -12 <(tr ', ' '\n\n' <<<"${GPUS_HF:-$gpu}" | grep . | sort -u) <(tr ', ' '\n\n' <<<"${GPUS_VLLM:-$gpu}" | grep . | sort -u) | paste -sd, -)
    if [ -n "$shared" ]; then
      problem "PARALLEL=1 needs disjoint GPU sets; GPUS_HF (${GPUS_HF:-$gpu}) and GPUS_VLLM (${GPUS_VLLM:-$gpu}) share GPU $shared"
    fi
  fi
fi

if [ ${#problems[@]} -gt 0 ]; then
  printf '%s\n' "${problems[@]}" >&2
  exit 2
fi

# The build's needs, after Docker answers: what scripts/docker-auto.sh chose, and every base image here or
# pullable (a build would otherwise fail after minutes), else how to make it.
build_ready() {
  if [ "${DOCKER_BUILDKIT:-1}" = 0 ]; then
    echo "preflight: building with Docker's legacy builder (slower): this docker CLI has no BuildKit; install its buildx plugin (Debian, Ubuntu: docker-buildx; Docker's packages: docker-buildx-plugin)"
  fi
  if [ "${BUILD_NETWORK:-}" = host ]; then
    echo "preflight: this Docker engine has no bridge network: building and preparing on the host's network (BUILD_NETWORK=host PREPARE_NETWORK=${PREPARE_NETWORK:-host})"
  fi
  local base
  for base in $(printf '%s\n' ${HF_BASE:-} ${VLLM_BASE:-} ${PYTHON_BASE:-} | sort -u); do
    "$docker" image inspect "$base" >/dev/null 2>&1 && continue
    echo "preflight: pulling the base image $base"
    "$docker" pull -q "$base" >/dev/null 2>&1 && continue
    case $base in
    debian:*) how="make it from Debian's archive: sudo scripts/base-image.sh $base (needs debootstrap)" ;;
    *) how="pull it on a host that reaches a registry and load it here (docker save $base | docker load)" ;;
    esac
    echo "preflight: the base image $base is not here and cannot be pulled: $how" >&2
    exit 2
  done
}

if [ "$device" = cpu ]; then
  docker_answers
  build_ready
  if [ "${DEVICE_ASKED:-auto}" = auto ]; then
    echo "preflight: no NVIDIA GPU found (nvidia-smi lists none): running the CPU variant on suite ${SUITE:-smoke}; DEVICE=gpu insists on a GPU"
  else
    echo "preflight: DEVICE=cpu: the CPU variant on suite ${SUITE:-smoke}"
  fi
  exit 0
fi

need=${min_driver[$variant]:-}
if [ -z "$need" ]; then
  echo "preflight: unknown CUDA variant '$variant'; allowed: ${!min_driver[*]} (or DEVICE=cpu)" >&2
  exit 2
fi
if ! command -v "$smi" >/dev/null 2>&1; then
  echo "preflight: DEVICE=gpu but nvidia-smi is not found: install the NVIDIA driver (>= $need for $variant) and the NVIDIA container toolkit, or run DEVICE=cpu" >&2
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

docker_answers
build_ready
if [ -n "$image" ]; then
  # Before a long build: a container with the GPU reserved must see it (the toolkit mounts nvidia-smi in).
  if ! err=$("$docker" run --rm --gpus "device=$gpu" --network none --entrypoint nvidia-smi "$image" -L 2>&1 >/dev/null); then
    echo "preflight: a container cannot use GPU $gpu (${err##*$'\n'}): install the NVIDIA container toolkit, run 'sudo nvidia-ctk runtime configure --runtime=docker' and restart Docker" >&2
    exit 2
  fi
  echo "preflight: the NVIDIA container toolkit gives containers GPU $gpu"
fi
