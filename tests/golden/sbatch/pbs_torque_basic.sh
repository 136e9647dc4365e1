#!/bin/bash
#PBS -N hpcgate-42-scf-1
#PBS -l nodes=2:ppn=8
#PBS -l mem=8192mb
#PBS -l walltime=01:00:00
#PBS -q batch
#PBS -o /scratch/alice/calc-42/hpcgate-42-scf-1.out
#PBS -e /scratch/alice/calc-42/hpcgate-42-scf-1.err
#PBS -r n

# ---- hpcgate prologue
export HPCGATE_WORKDIR=/scratch/alice/calc-42
export HPCGATE_JOB_NAME=hpcgate-42-scf-1
if [ -n "${SLURM_JOB_ID:-}" ]; then
  HPCGATE_TASK_INDEX="${SLURM_ARRAY_TASK_ID:-}"
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    HPCGATE_JOB_ID="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  else
    HPCGATE_JOB_ID="$SLURM_JOB_ID"
  fi
elif [ -n "${PBS_JOBID:-}" ]; then
  HPCGATE_TASK_INDEX="${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-}}"
  HPCGATE_JOB_ID="$PBS_JOBID"
else
  HPCGATE_TASK_INDEX="${HPCGATE_LOCAL_TASK_INDEX:-}"
  HPCGATE_JOB_ID="${HPCGATE_LOCAL_JOB_ID:-pid$$}"
fi
# file-name safe (PBS ids look like 123[4].server)
HPCGATE_JOB_ID="${HPCGATE_JOB_ID//[^A-Za-z0-9_.-]/_}"
export HPCGATE_TASK_INDEX HPCGATE_JOB_ID
HPCGATE_STATE_DIR="$HPCGATE_WORKDIR/.hpcgate"
mkdir -p "$HPCGATE_STATE_DIR"
printf 'start=%s\nhost=%s\njob_id=%s\ntask_index=%s\n' "$(date +%s)" "$(hostname)" \
  "$HPCGATE_JOB_ID" "$HPCGATE_TASK_INDEX" > "$HPCGATE_STATE_DIR/$HPCGATE_JOB_ID.start"

# Open MPI's session directory, one per job: MPI programs started without a launcher
# (singletons) on one node race to create the shared /tmp/ompi.<host>.<uid>, and the
# loser dies in MPI_Init ("mkdir ... File exists"). Kept short: it holds Unix sockets.
# A site's own setting wins.
HPCGATE_OMPI_TMP=""
if [ -z "${OMPI_MCA_orte_tmpdir_base:-}" ]; then
  HPCGATE_OMPI_TMP="${TMPDIR:-/tmp}/hpcgate-ompi-$HPCGATE_JOB_ID"
  mkdir -p "$HPCGATE_OMPI_TMP" && export OMPI_MCA_orte_tmpdir_base="$HPCGATE_OMPI_TMP"
fi

# hpcgate_finish RC: record RC in .hpcgate/<job id>.ec (atomically), print the
# sentinel line, exit with RC. The .ec file is the program's own verdict;
# accounting (sacct) only says why a job ended (TIMEOUT, OOM, CANCELLED).
hpcgate_finish() {
  trap - TERM INT
  [ -n "$HPCGATE_OMPI_TMP" ] && rm -rf -- "$HPCGATE_OMPI_TMP"
  printf '%s\n' "$1" > "$HPCGATE_STATE_DIR/$HPCGATE_JOB_ID.ec.tmp" &&
    mv -f "$HPCGATE_STATE_DIR/$HPCGATE_JOB_ID.ec.tmp" "$HPCGATE_STATE_DIR/$HPCGATE_JOB_ID.ec"
  echo "HPCGATE_SCRIPT_DONE job=$HPCGATE_JOB_ID rc=$1 end=$(date +%s)"
  # End spool: the watching dispatcher harvests at once (a hint only: engine/end_spool.py).
  HPCGATE_END_SPOOL="${HPCGATE_WORKDIR%/*/*}/.ended"
  { [ -d "$HPCGATE_END_SPOOL" ] && : > "$HPCGATE_END_SPOOL/$HPCGATE_JOB_ID"; } 2>/dev/null || true
  exit "$1"
}
trap 'hpcgate_finish 143' TERM
trap 'hpcgate_finish 130' INT
cd "$HPCGATE_WORKDIR" || hpcgate_finish 1
HPCGATE_RC=0

# ---- body: generic
mpirun siesta
HPCGATE_RC=$?

# ---- hpcgate epilogue: writes .hpcgate/<job id>.ec and the sentinel, exits with the code
hpcgate_finish "$HPCGATE_RC"
