#!/bin/bash
#SBATCH --job-name=hpcgate-tbtrans
#SBATCH --chdir=/scratch/hpcgate/tbtrans
#SBATCH --output=/scratch/hpcgate/tbtrans/hpcgate-tbtrans-%j.out
#SBATCH --error=/scratch/hpcgate/tbtrans/hpcgate-tbtrans-%j.err
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:10:00
#SBATCH --partition=debug
#SBATCH --no-requeue

# ---- hpcgate prologue
export HPCGATE_WORKDIR=/scratch/hpcgate/tbtrans
export HPCGATE_JOB_NAME=hpcgate-tbtrans
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
# ---- hpcgate: files inherited from parent steps
shopt -s nullglob
for f in /scratch/hpcgate/device/*.TSHS; do cp -rp -- "$f" . || hpcgate_finish 1; done
shopt -u nullglob

# ---- body: tbtrans
export OMP_NUM_THREADS=1
tbtrans < device.fdf > tbtrans.out
HPCGATE_RC=$?
mkdir -p .hpcgate
hpcgate validate . --code siesta --json > .hpcgate/validation.json
HPCGATE_VALIDATE_RC=$?
if [ "$HPCGATE_RC" -eq 0 ] && [ "$HPCGATE_VALIDATE_RC" -ne 0 ]; then
  echo "hpcgate: validation failed with rc=$HPCGATE_VALIDATE_RC" >&2
  HPCGATE_RC=$HPCGATE_VALIDATE_RC
fi
if [ "$HPCGATE_RC" -eq 0 ]; then
  hpcgate extract . --code siesta --analyses transiesta_iv --variant-json '{"TS.Voltage": 0.1}' --out .hpcgate/extract.json || echo "hpcgate: extraction failed (see .hpcgate/extract.json)" >&2
fi

# ---- hpcgate epilogue: writes .hpcgate/<job id>.ec and the sentinel, exits with the code
hpcgate_finish "$HPCGATE_RC"
