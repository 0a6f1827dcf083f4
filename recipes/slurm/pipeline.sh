#!/bin/bash
# recipes/slurm/pipeline.sh [--dry-run] RUNS_DIR [STAGE=RECIPE]...   submit the whole lifecycle
# recipes/slurm/pipeline.sh --status RUNS_DIR                        where a submitted one stands
#
# Every stage becomes its own SLURM job, chained with --dependency=afterok: clean (a job array),
# dedup (signatures and buckets arrays, then finish), tokenize, pretrain (multi-node torchrun),
# sft, rm, ppo, dpo (multi-node torchrun), quantize, eval. Each stage writes RUNS_DIR/STAGE; a stage
# whose RUNS_DIR/STAGE/manifest.json exists is done and not submitted, so running the same command
# again submits only what is missing (nothing, once all is done). STAGE=RECIPE replaces a stage's
# recipe (default: the CPU demo's, as in the Makefile); the same command with real recipes is a
# cluster run, e.g.
#   SHARDS=64 SBATCH_OPTS="--account=llm" \
#   SBATCH_OPTS_pretrain="--nodes=8 --gpus-per-node=8 --partition=gpu" \
#   SBATCH_OPTS_sft="--nodes=2 --gpus-per-node=8 --partition=gpu" \
#   recipes/slurm/pipeline.sh /shared/runs/v1 pretrain=recipes/pretrain/llama-1b.yaml sft=recipes/sft/chat.yaml
#
# Every job is submitted with --requeue (a requeued job continues: array shards keep their
# completion markers, training stages --resume from their last checkpoint, a finished stage is up
# to date) and --kill-on-invalid-dep=yes (a failed job cancels everything after it). A last job
# (this script with --status, after all the others whatever their end) writes to
# RUNS_DIR/logs/pipeline-JOBID.out which stage failed and which were cancelled; the stage jobs log
# to RUNS_DIR/logs/STAGE-JOBID.out and RUNS_DIR/pipeline.jobs lists "STAGE JOBID" per job.
#
# A shell script, not an llmctl subcommand: it runs where users submit, on a login node that has
# sbatch but often not the Python environment the jobs use (torch, llmctl); it needs bash, sbatch,
# scontrol and this directory's *.sbatch files, nothing else. The jobs run in the directory this
# script is called from (--chdir), so relative paths mean what they mean on the command line.
#
# Env (all optional):
#   LLMCTL     the llmctl command in the jobs (default llmctl; with PYTHON set, "$PYTHON -m llmctl")
#   PYTHON     the interpreter torchrun runs under for the training stages (default python)
#   RAW        the raw text clean reads (default data/sample of this checkout)
#   CHAT       sft's data arguments (default chat=data/sft/chitchat.jsonl.zst of this checkout)
#   PREFS      rm's and dpo's data arguments (default mc=data/rm/mc-pairs.jsonl.zst)
#   PROMPTS    ppo's prompts (default data/sft/chitchat.jsonl.zst)
#   AGAINST    dedup's evaluation sets (default "--against data/eval/sotu-quotes.jsonl")
#   SHARDS     array tasks of clean and of each dedup array step (default 4)
#   NPROC_PER_NODE  ranks per node of the training stages (default: the node's GPUs, else 1)
#   SBATCH_OPTS, SBATCH_OPTS_<stage>  more sbatch options for every job / one stage's job(s)
#   LLMCTL_HOME  the checkout whose recipes/ and data/ give the defaults (default: ../.. of this file)
#SBATCH --job-name=llmctl-pipeline
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:10:00
set -euo pipefail

STAGES=(clean dedup tokenize pretrain sft rm ppo dpo quantize eval)
FAILED_STATES="FAILED TIMEOUT OUT_OF_MEMORY NODE_FAIL BOOT_FAIL DEADLINE PREEMPTED"

die() { echo "pipeline.sh: $*" >&2; exit 2; }
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

# ---------------------------------------------------------------- status
# The state of one job (all its array tasks): a manifest says done; otherwise scontrol (jobs that
# ended within the controller's MinJobAge), else sacct (where accounting runs), else "unknown".
job_state() {
  local id=$1 lines state
  if lines=$(scontrol show job -o "$id" 2>/dev/null) && [ -n "$lines" ]; then
    state=$(grep -o 'JobState=[A-Z_]*' <<<"$lines" | cut -d= -f2 | sort -u | tr '\n' ' ')
  elif lines=$(sacct -n -X -P -j "$id" -o State 2>/dev/null) && [ -n "$lines" ]; then
    state=$(awk '{print $1}' <<<"$lines" | sort -u | tr '\n' ' ')
  else
    echo "UNKNOWN"; return
  fi
  local s
  for s in $FAILED_STATES CANCELLED RUNNING COMPLETING REQUEUED PENDING; do
    if [[ " $state" == *" $s "* ]]; then echo "$s"; return; fi
  done
  echo "${state%% *}"
}

job_field() { # job_field ID FIELD [STATE]: FIELD= of scontrol's record (of a task in STATE, if any)
  local lines
  lines=$(scontrol show job -o "$1" 2>/dev/null) || true
  if [ -n "${3:-}" ] && grep -q "JobState=$3 " <<<"$lines"; then lines=$(grep "JobState=$3 " <<<"$lines"); fi
  grep -o " $2=[^ ]*" <<<"$lines" | head -n 1 | cut -d= -f2- || true
}

status() {
  local runs=$1 jobs=$1/pipeline.jobs failed="" cancelled=() missing=() running=0 name id state dir
  [ -f "$jobs" ] || die "$jobs not found: submit the pipeline first (pipeline.sh $runs)"
  # fd 3: scontrol and sacct in the loop must not read the list
  while read -r name id <&3; do
    case "$name" in '#'* | '' | pipeline) continue ;; esac
    dir=$runs/${name%%-*} # dedup-signatures and dedup-buckets belong to dedup
    if [ -f "$dir/manifest.json" ]; then
      printf '%-18s %-10s %s\n' "$name" done "$dir/manifest.json"
      continue
    fi
    if [ "$id" = done ]; then state=MISSING; else state=$(job_state "$id"); fi
    local kind=$state
    if [[ " $FAILED_STATES " == *" $state "* ]]; then kind=FAILED; fi
    case "$kind" in
      FAILED)
        local log
        log=$(job_field "$id" StdOut "$state")
        printf '%-18s %-10s job %s exit %s, log %s\n' "$name" "$state" "$id" \
          "$(job_field "$id" ExitCode "$state")" "$log"
        [ -n "$failed" ] || failed="$name (job $id, $state, log $log)"
        ;;
      CANCELLED)
        printf '%-18s %-10s job %s %s\n' "$name" "$state" "$id" "$(job_field "$id" Reason "$state")"
        cancelled+=("$name")
        ;;
      COMPLETED)
        # an array step: its stage's manifest comes with the step after it
        printf '%-18s %-10s job %s\n' "$name" "$state" "$id"
        ;;
      MISSING | UNKNOWN)
        # no manifest, and the job ended too long ago for scontrol (no sacct here) or before this list
        printf '%-18s %-10s job %s: no manifest; see %s\n' "$name" "$state" "$id" "$runs/logs"
        missing+=("$name")
        ;;
      *)
        printf '%-18s %-10s job %s\n' "$name" "$state" "$id"
        running=1
        ;;
    esac
  done 3<"$jobs"
  if [ -n "$failed" ]; then
    echo "pipeline: FAILED at stage $failed; cancelled: ${cancelled[*]:-none}"
    return 1
  fi
  if [ ${#cancelled[@]} -gt 0 ]; then
    echo "pipeline: cancelled: ${cancelled[*]}"
    return 1
  fi
  if [ "$running" = 1 ]; then echo "pipeline: in progress"; return 3; fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "pipeline: not done: ${missing[*]}"
    return 1
  fi
  echo "pipeline: every stage is done"
}

if [ "${1:-}" = --status ]; then
  [ $# -eq 2 ] || die "usage: pipeline.sh --status RUNS_DIR"
  status "$2"
  exit $?
fi

# ---------------------------------------------------------------- submission
DRY=0
if [ "${1:-}" = --dry-run ]; then DRY=1; shift; fi
[ $# -ge 1 ] || die "usage: pipeline.sh [--dry-run] RUNS_DIR [STAGE=RECIPE]...  |  pipeline.sh --status RUNS_DIR"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
HOME_=${LLMCTL_HOME:-$(cd "$HERE/../.." && pwd)}
RUNS=$(abspath "${1%/}")
shift

declare -A RECIPE=(
  [clean]=recipes/clean/default.yaml [dedup]=recipes/dedup/default.yaml
  [tokenize]=recipes/tokenize/tiny.yaml [pretrain]=recipes/pretrain/tiny.yaml
  [sft]=recipes/sft/demo.yaml [rm]=recipes/rm/demo.yaml [ppo]=recipes/ppo/demo.yaml
  [dpo]=recipes/dpo/demo.yaml [quantize]=recipes/quantize/demo.yaml [eval]=recipes/eval/demo.yaml
)
for s in "${STAGES[@]}"; do RECIPE[$s]=$HOME_/${RECIPE[$s]}; done
for arg in "$@"; do
  [[ "$arg" == *=* ]] || die "'$arg' is not STAGE=RECIPE (stages: ${STAGES[*]})"
  s=${arg%%=*}
  [ -n "${RECIPE[$s]+x}" ] || die "unknown stage '$s' in '$arg' (stages: ${STAGES[*]})"
  [ -f "${arg#*=}" ] || die "$s: recipe ${arg#*=} not found"
  RECIPE[$s]=$(abspath "${arg#*=}")
done

RAW=${RAW:-$HOME_/data/sample}
CHAT=${CHAT:-chat=$HOME_/data/sft/chitchat.jsonl.zst}
PREFS=${PREFS:-mc=$HOME_/data/rm/mc-pairs.jsonl.zst}
PROMPTS=${PROMPTS:-$HOME_/data/sft/chitchat.jsonl.zst}
AGAINST=${AGAINST---against $HOME_/data/eval/sotu-quotes.jsonl}
SHARDS=${SHARDS:-4}
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "SHARDS=$SHARDS: must be a positive integer"
if [ -z "${LLMCTL:-}" ]; then
  if [ -n "${PYTHON:-}" ]; then LLMCTL="$PYTHON -m llmctl"; else LLMCTL=llmctl; fi
fi
export LLMCTL PYTHON=${PYTHON:-python}
command -v sbatch >/dev/null || [ "$DRY" = 1 ] || { echo "pipeline.sh: sbatch not found" >&2; exit 1; }

# A resubmission while jobs of the last one are queued would run stages twice.
if [ "$DRY" = 0 ] && [ -f "$RUNS/pipeline.jobs" ]; then
  while read -r name id <&3; do
    [[ "$id" =~ ^[0-9]+$ ]] || continue
    if [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; then
      echo "pipeline.sh: job $id ($name) of the last submission is still queued or running;" \
        "wait for it (pipeline.sh --status $RUNS) or scancel it" >&2
      exit 1
    fi
  done 3<"$RUNS/pipeline.jobs"
fi

JOBS=$RUNS/pipeline.jobs
if [ "$DRY" = 1 ]; then NEW=/dev/null; else
  mkdir -p "$RUNS/logs"
  NEW=$(mktemp "$RUNS/.pipeline.jobs.XXXXXX")
fi
echo "# $(date -u +%FT%TZ) pipeline.sh $RUNS: STAGE JOBID (done: finished before this submission)" >"$NEW"
declare -A JOB=() # stage -> the job that finishes it (dedup: the finish step)
SUBMITTED=()
NEXT_DRY=1000

# sbatch for one job (its id in LAST, a line in the jobs list); a refused submission cancels the
# jobs submitted before it, so no half chain is left
submit() { # submit NAME STAGE [sbatch options...] SCRIPT ARGS...
  local name=$1 stage=$2 extra id var
  shift 2
  var=SBATCH_OPTS_$stage
  extra="${SBATCH_OPTS:-} ${!var:-}"
  # shellcheck disable=SC2086
  local cmd=(sbatch --parsable --requeue --kill-on-invalid-dep=yes --open-mode=append --chdir="$PWD"
    --job-name="llmctl-$name" $extra "$@")
  if [ "$DRY" = 1 ]; then
    id=$((NEXT_DRY++))
    echo "$id: ${cmd[*]}" >&2
  elif ! id=$("${cmd[@]}"); then
    echo "pipeline.sh: sbatch refused the $name job; cancelling this submission's jobs: ${SUBMITTED[*]:-none}" >&2
    [ ${#SUBMITTED[@]} -eq 0 ] || scancel "${SUBMITTED[@]}" || true
    [ "$DRY" = 1 ] || rm -f "$NEW"
    exit 1
  fi
  id=${id%%;*}
  SUBMITTED+=("$id")
  echo "$name $id" >>"$NEW"
  printf '%-18s %-10s job %s\n' "$name" "$([ "$DRY" = 1 ] && echo dry-run || echo submitted)" "$id"
  LAST=$id
}

# afterok on the given stages' jobs, those submitted now (a done stage needs no waiting)
after() {
  local ids=() s
  for s in "$@"; do [ -z "${JOB[$s]:-}" ] || ids+=("${JOB[$s]}"); done
  if [ ${#ids[@]} -gt 0 ]; then local IFS=:; echo "--dependency=afterok:${ids[*]}"; fi
}

done_() { [ -f "$RUNS/$1/manifest.json" ]; }

# STAGE's job, unless it is done; a done stage after a submitted one is kept as it is (the stages
# never overwrite a finished artifact): say so, since it was built from the old upstream
stage() { # stage NAME UPSTREAM... -- SUBMIT-ARGS...
  local name=$1 ups=() u stale=""
  shift
  while [ "$1" != -- ]; do ups+=("$1"); shift; done
  shift
  if done_ "$name"; then
    for u in "${ups[@]}"; do [ -z "${JOB[$u]:-}" ] || stale=$u; done
    echo "$name done" >>"$NEW"
    printf '%-18s done       %s\n' "$name" "$RUNS/$name/manifest.json"
    if [ -n "$stale" ]; then
      echo "pipeline.sh: warning: $name is done but $stale is rebuilt; remove $RUNS/$name to rebuild it too" >&2
    fi
    return
  fi
  local dep
  dep=$(after "${ups[@]}")
  "$@" ${dep:+"$dep"}
}

LOGS=$RUNS/logs
T=$HERE # the job scripts: sbatch copies each one at submission, so the jobs never read this directory
DEP=""

clean_job() { submit clean clean --array=0-$((SHARDS - 1)) --output="$LOGS/clean-%A_%a.out" "$@" \
  "$T/clean-array.sbatch" "$RAW" "$RUNS/clean" "${RECIPE[clean]}"; JOB[clean]=$LAST; }
stage clean -- clean_job

dedup_job() {
  local dd=("$T/dedup.sbatch" "$RUNS/clean" "$RUNS/dedup" "${RECIPE[dedup]}")
  submit dedup-signatures dedup --array=0-$((SHARDS - 1)) --output="$LOGS/dedup-signatures-%A_%a.out" \
    --export="ALL,STEP=signatures,NUM_SHARDS=,AGAINST=$AGAINST" "$@" "${dd[@]}"
  submit dedup-buckets dedup --array=0-$((SHARDS - 1)) --output="$LOGS/dedup-buckets-%A_%a.out" \
    --export="ALL,STEP=buckets,NUM_SHARDS=,AGAINST=$AGAINST" --dependency=afterok:"$LAST" "${dd[@]}"
  submit dedup dedup --output="$LOGS/dedup-%j.out" \
    --export="ALL,STEP=finish,NUM_SHARDS=$SHARDS,AGAINST=$AGAINST" --dependency=afterok:"$LAST" "${dd[@]}"
  JOB[dedup]=$LAST
}
stage dedup clean -- dedup_job

one_job() { # one_job STAGE [--dependency=...]: tokenize, quantize, eval through stage.sbatch
  local s=$1 dep=() args=()
  shift
  if [[ "${1:-}" == --dependency=* ]]; then dep=("$1"); shift; fi
  case "$s" in
    tokenize) args=("$RUNS/dedup" --resume) ;;
    quantize) args=("$RUNS/dpo" --calibration "$RUNS/dedup") ;;
    eval) args=("$RUNS/pretrain" "$RUNS/sft" "$RUNS/ppo" "$RUNS/dpo" "$RUNS/quantize" --resume) ;;
  esac
  submit "$s" "$s" --output="$LOGS/$s-%j.out" --export=ALL,EXTRA= "${dep[@]}" \
    "$T/stage.sbatch" "$s" "$RUNS/$s" "${RECIPE[$s]}" "${args[@]}"
  JOB[$s]=$LAST
}
stage tokenize dedup -- one_job tokenize

pretrain_job() {
  local nproc=()
  [ -z "${NPROC_PER_NODE:-}" ] || nproc=("$NPROC_PER_NODE")
  submit pretrain pretrain --output="$LOGS/pretrain-%j.out" --export=ALL,EXTRA= "$@" \
    "$T/pretrain.sbatch" "$RUNS/tokenize" "$RUNS/pretrain" "${RECIPE[pretrain]}" "${nproc[@]}"
  JOB[pretrain]=$LAST
}
stage pretrain tokenize -- pretrain_job

post_job() { # post_job STAGE [--dependency=...] -- ARGS...
  local s=$1 dep=()
  shift
  if [[ "${1:-}" == --dependency=* ]]; then dep=("$1"); shift; fi
  submit "$s" "$s" --output="$LOGS/$s-%j.out" --export=ALL,EXTRA= "${dep[@]}" \
    "$T/posttrain.sbatch" "$s" "$RUNS/$s" "${RECIPE[$s]}" "${POST_ARGS[@]}"
  JOB[$s]=$LAST
}
# shellcheck disable=SC2206  # CHAT, PREFS, PROMPTS are word lists (several sources)
POST_ARGS=("$RUNS/pretrain" $CHAT)
stage sft pretrain -- post_job sft
POST_ARGS=("$RUNS/sft" $PREFS)
stage rm sft -- post_job rm
POST_ARGS=("$RUNS/sft" --reward-model "$RUNS/rm" --prompts $PROMPTS)
stage ppo sft rm -- post_job ppo
POST_ARGS=("$RUNS/sft" $PREFS)
stage dpo sft -- post_job dpo
stage quantize dpo dedup -- one_job quantize
stage eval pretrain sft ppo dpo quantize -- one_job eval

if [ ${#SUBMITTED[@]} -eq 0 ]; then
  [ "$DRY" = 1 ] || mv "$NEW" "$JOBS"
  echo "pipeline: every stage is done; nothing submitted"
  exit 0
fi
# the report: this script again, after every job above whatever its end
ALL=$(IFS=:; echo "${SUBMITTED[*]}")
submit pipeline pipeline --dependency=afterany:"$ALL" --kill-on-invalid-dep=no --no-requeue \
  --output="$LOGS/pipeline-%j.out" "$SELF" --status "$RUNS"
if [ "$DRY" = 0 ]; then
  mv "$NEW" "$JOBS"
  echo "pipeline: ${#SUBMITTED[@]} jobs; $JOBS; the last one's log ($LOGS/pipeline-$LAST.out) names a failed stage"
fi
