#!/usr/bin/env bash
# The GPU check of issue #22 in one command, sized for <= 8 minutes on one H200, ending in one table:
#   1. environment: a venv over the machine's own torch, seqrec_cli installed (or put on PYTHONPATH)
#   2. the CUDA tests (tests/test_cuda.py: bf16 autocast, fused Adam/AdamW, trainer.compile, no
#      per-step host sync, trainer.deterministic, torchrun + NCCL with one process, DDP over NCCL)
#   3. validation ranks of one CPU-trained checkpoint on CUDA equal to the CPU's (float ties aside)
#   4. experiment=synthetic_ml20m eager and with trainer.compile=true: s/epoch, the GPU-busy share
#      of a step (trainer.profile_steps), peak GPU memory
#
# Usage:
#   scripts/gpu_check.sh                  # on the GPU machine
#   scripts/gpu_check.sh --dry-run        # print the plan, run nothing
#   scripts/gpu_check.sh --prepare-wheels # where the package registry answers: hydra-core, omegaconf and
#                                         # antlr4 wheels into .gpu-wheels/ (git-ignored), for a GPU box
#                                         # without network (carry .gpu-wheels there)
#   scripts/gpu_check.sh --cpu --ml20m-users 300 --ml20m-extra "dataset.synthetic.n_items=500 model.max_len=50"
#                                         # every step on the CPU at toy size: tests this script itself
# Options: --budget SECONDS (default 480, 8 minutes: the whole run, every step under `timeout`), --work DIR
# (default outputs/gpu_check), --wheels DIR, --ml20m-users N (138000), --ml20m-epochs N (2, eager; the
# compiled run trains 1 and its figure is the profiled pace), --skip-compile.
# Exit code: 0 when every step that ran passed (no CUDA: 0 after the CPU parts), else 1.
# When $OUT is set (the device tool), table.md, results.json, pytest.xml and logs.txt are copied there.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
BUDGET=480 DRY_RUN=0 PREPARE=0 FORCE_CPU=0 SKIP_COMPILE=0
WORK="$REPO/outputs/gpu_check" WHEELS="$REPO/.gpu-wheels"
ML20M_EPOCHS=2 ML20M_USERS=138000 ML20M_EXTRA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --prepare-wheels) PREPARE=1 ;;
    --cpu) FORCE_CPU=1 ;;
    --skip-compile) SKIP_COMPILE=1 ;;
    --budget) BUDGET=$2; shift ;;
    --work) WORK=$2; shift ;;
    --wheels) WHEELS=$2; shift ;;
    --ml20m-epochs) ML20M_EPOCHS=$2; shift ;;
    --ml20m-users) ML20M_USERS=$2; shift ;;
    --ml20m-extra) ML20M_EXTRA=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
# Versions as installed on the development machines (pure-Python wheels: any platform, any 3.x).
HYDRA_WHEELS=("hydra-core==1.3.8" "omegaconf==2.3.1" "antlr4-python3-runtime==4.9.3")

say() { echo "[gpu_check $(( SECONDS ))s] $*"; }

if [ "$PREPARE" = 1 ]; then
  mkdir -p "$WHEELS"
  timeout 300 "$PY" -m pip wheel -q --no-deps -w "$WHEELS" "${HYDRA_WHEELS[@]}" \
    || { echo "pip wheel failed" >&2; exit 1; }
  ls -l "$WHEELS"; exit 0
fi

if [ "$DRY_RUN" = 0 ]; then  # a dry run leaves the last real run's results alone
  mkdir -p "$WORK"
  rm -rf "$WORK/steps" "$WORK/logs" "$WORK/runs" "$WORK"/*.json "$WORK/pytest.xml" "$WORK/table.md"
  mkdir -p "$WORK/steps" "$WORK/logs" "$WORK/runs"
fi
export SEQREC_CACHE_DIR="$WORK/cache" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
FAILED=0

# step NAME LIMIT CMD...: run CMD under `timeout` for at most LIMIT seconds and what is left of the
# budget, log to logs/NAME.log, record the outcome in steps/NAME.status for the table.
step() {
  local name=$1 limit=$2; shift 2
  local left=$(( BUDGET - SECONDS ))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$DRY_RUN" = 1 ]; then say "would run $name (<= ${limit}s): $*"; return 0; fi
  if [ "$limit" -lt 15 ]; then
    echo "skipped: the ${BUDGET}s budget was spent" > "$WORK/steps/$name.status"
    say "$name skipped (budget spent)"; return 1
  fi
  say "$name (<= ${limit}s) ..."
  local started=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" > "$WORK/logs/$name.log" 2>&1; rc=$?
  local took=$(( SECONDS - started ))
  if [ $rc = 0 ]; then echo "ok ${took}s" > "$WORK/steps/$name.status"
  elif [ $rc = 124 ] || [ $rc = 137 ]; then echo "TIMED OUT after ${took}s" > "$WORK/steps/$name.status"; FAILED=1
  else echo "FAILED (exit $rc) ${took}s" > "$WORK/steps/$name.status"; FAILED=1; fi
  say "$name: $(cat "$WORK/steps/$name.status")"
  [ $rc != 0 ] && tail -n 15 "$WORK/logs/$name.log" | sed 's/^/    /'
  return $rc
}
skip() { echo "skipped: $2" > "$WORK/steps/$1.status"; say "$1 skipped: $2"; }

# ------------------------------------------------------------------------------- 1. environment
NOTES=()
VENV="${TMPDIR:-/tmp}/seqrec-gpu-venv"
GPU_NAME=$(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
           | head -n 1)
[ -n "$GPU_NAME" ] || GPU_NAME="none seen by nvidia-smi"
if [ "$DRY_RUN" = 1 ]; then
  say "would make $VENV (over the packages of $PY), install hydra-core/omegaconf from $WHEELS or the registry,"
  say "  then pip install --no-build-isolation --no-deps -e . (else PYTHONPATH=$REPO)"
  VPY=$PY
else
  # The venv sees the packages of $PY (the GPU image's CUDA torch, numpy, pandas, pytest) through a
  # .pth file, not --system-site-packages: $PY may itself be a venv (there: /opt/torch/.venv), whose
  # packages --system-site-packages would not reach. --without-pip: pip and setuptools come from $PY
  # too (a bundled old setuptools cannot build an editable install).
  if timeout 60 "$PY" -m venv --without-pip --clear "$VENV" > "$WORK/logs/venv.log" 2>&1 \
     && VSITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
     && "$PY" -c "import site; print('\n'.join(site.getsitepackages()))" > "$VSITE/_gpu_check_parent.pth"; then
    VPY="$VENV/bin/python"
  else VPY=$PY; NOTES+=("no venv (python -m venv failed, logs/venv.log): used $PY as it is"); fi
  if ! timeout 60 "$VPY" -c "import torch, numpy, pandas, rich" 2>/dev/null; then
    NOTES+=("torch/numpy/pandas/rich missing under $VPY: nothing can run")
  fi
  if ! timeout 60 "$VPY" -c "import hydra, omegaconf" 2>/dev/null; then
    if ls "$WHEELS"/*.whl > /dev/null 2>&1 && timeout 120 "$VPY" -m pip install -q --no-index --no-deps \
         --find-links "$WHEELS" hydra-core omegaconf antlr4-python3-runtime >> "$WORK/logs/venv.log" 2>&1; then
      NOTES+=("hydra-core/omegaconf from $WHEELS")
    elif PIP_DEFAULT_TIMEOUT=10 timeout 120 "$VPY" -m pip install -q "${HYDRA_WHEELS[@]}" \
         >> "$WORK/logs/venv.log" 2>&1; then
      NOTES+=("hydra-core/omegaconf from the package registry")
    else
      NOTES+=("COULD NOT install hydra-core/omegaconf (no $WHEELS wheels, no registry): run --prepare-wheels"
              "where pip works and carry .gpu-wheels")
    fi
  fi
  if timeout 180 "$VPY" -m pip install -q --no-build-isolation --no-deps --no-index -e . \
       >> "$WORK/logs/venv.log" 2>&1; then
    NOTES+=("seqrec_cli installed editable")
  else
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    NOTES+=("pip install -e . failed (see logs/venv.log): seqrec_cli from PYTHONPATH (conf/ read beside the package)")
  fi
fi
CUDA=0
if [ "$FORCE_CPU" = 0 ] \
   && timeout 60 "$VPY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
  CUDA=1
fi
TORCH=$(timeout 60 "$VPY" -c "import torch; print(torch.__version__, 'CUDA', torch.version.cuda)" 2>/dev/null \
        || echo "torch not importable")
READY=1
timeout 60 "$VPY" -c "import seqrec_cli.api" > "$WORK/logs/import.log" 2>&1 || READY=0
SUMMARY="GPU: $GPU_NAME; torch $TORCH; CUDA usable: $([ $CUDA = 1 ] && echo yes || echo NO)"
SUMMARY="$SUMMARY; $(IFS=';'; echo "${NOTES[*]:-}")"
if [ "$DRY_RUN" = 0 ]; then
  "$VPY" -c 'import json, sys; json.dump({"summary": sys.argv[1]}, open(sys.argv[2], "w"))' "$SUMMARY" "$WORK/env.json"
  if [ $READY = 1 ]; then echo "ok ${SECONDS}s" > "$WORK/steps/setup.status"
  else echo "FAILED: seqrec_cli does not import (logs/import.log)" > "$WORK/steps/setup.status"; FAILED=1; fi
fi
say "$SUMMARY"
if [ $CUDA = 0 ]; then
  say "No CUDA device$([ "$FORCE_CPU" = 1 ] && echo " (--cpu)"): the CUDA tests skip and no GPU figure is measured."
fi
DEVICE=$([ $CUDA = 1 ] || { [ "$DRY_RUN" = 1 ] && [ "$FORCE_CPU" = 0 ]; } && echo cuda || echo cpu)

# ---------------------------------------------------------------------- 2. the CUDA test subset
if [ $READY = 1 ] || [ "$DRY_RUN" = 1 ]; then
  if [ "$DRY_RUN" = 1 ] || timeout 30 "$VPY" -c "import pytest" 2>/dev/null; then
    # A test that hangs fails alone (pytest-timeout, in the GPU image) instead of losing every result.
    PER_TEST=$(timeout 30 "$VPY" -c "import pytest_timeout" 2>/dev/null && echo "--timeout=120")
    step tests 200 "$VPY" -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts="" ${PER_TEST:+"$PER_TEST"} \
      --junitxml="$WORK/pytest.xml"
  else skip tests "pytest is not installed under $VPY"; fi

# ------------------------------------------------------- 3. GPU ranks = CPU ranks, one checkpoint
  REF="$WORK/runs/reference"
  if step reference 90 "$VPY" scripts/gpu_check.py train "$WORK/reference.json" -- debug=smoke \
       dataset.synthetic.n_users=2000 dataset.synthetic.n_items=500 trainer.max_epochs=3 trainer.device=cpu \
       trainer.amp=false trainer.progress=false "hydra.run.dir=$REF"; then
    if [ $CUDA = 1 ] || [ "$DRY_RUN" = 1 ]; then
      step equal 90 "$VPY" scripts/gpu_check.py equal "$REF" "$WORK/equal.json"
    else skip equal "no CUDA device (the CPU reference run above did train)"; fi
  else skip equal "the CPU reference run failed"; fi

# ------------------------------------------------------------- 4. synthetic_ml20m, eager / compiled
  ML20M=(experiment=synthetic_ml20m "trainer.device=$DEVICE" "trainer.max_epochs=$ML20M_EPOCHS"
         "dataset.synthetic.n_users=$ML20M_USERS" trainer.profile_steps=20 trainer.progress=false)
  # shellcheck disable=SC2206  # --ml20m-extra is a list of overrides split on spaces
  ML20M+=($ML20M_EXTRA)
  if [ $CUDA = 1 ] || [ "$FORCE_CPU" = 1 ] || [ "$DRY_RUN" = 1 ]; then
    step ml20m_eager 150 "$VPY" scripts/gpu_check.py train "$WORK/ml20m_eager.json" -- "${ML20M[@]}" \
      "hydra.run.dir=$WORK/runs/ml20m_eager"
    if [ "$SKIP_COMPILE" = 1 ]; then skip ml20m_compiled "--skip-compile"
    else step ml20m_compiled 240 "$VPY" scripts/gpu_check.py train "$WORK/ml20m_compiled.json" -- "${ML20M[@]}" \
      trainer.max_epochs=1 trainer.compile=true "hydra.run.dir=$WORK/runs/ml20m_compiled"; fi
  else
    skip ml20m_eager "no CUDA device"; skip ml20m_compiled "no CUDA device"
  fi
fi
[ "$DRY_RUN" = 1 ] && exit 0

# --------------------------------------------------------------------------------------- table
echo
echo "## GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'), ${SECONDS}s of a ${BUDGET}s budget)"
echo
"$VPY" scripts/gpu_check.py table "$WORK" || cat "$WORK"/steps/*.status
grep -q "FAILED\|DIFFER\|ERROR" "$WORK/table.md" 2>/dev/null && FAILED=1
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$WORK/table.md" "$OUT/" 2>/dev/null; cp "$WORK/pytest.xml" "$OUT/" 2>/dev/null
  "$VPY" -c 'import json, sys, pathlib; w = pathlib.Path(sys.argv[1]); json.dump({p.stem: json.loads(p.read_text())
for p in sorted(w.glob("*.json"))}, open(sys.argv[2], "w"), indent=2)' "$WORK" "$OUT/results.json" 2>/dev/null
  for log in "$WORK"/logs/*.log; do echo "===== $log"; tail -n 60 "$log"; done > "$OUT/logs.txt" 2>/dev/null
fi
if [ $CUDA = 0 ] && [ $READY = 1 ] && [ $FAILED = 0 ]; then exit 0; fi
exit $FAILED
