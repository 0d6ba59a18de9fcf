#!/bin/sh
# Runs one MPI test job and checks what mpirun's status cannot tell:
#   - rank 0 wrote its result (PPX_TEST_STATUS) and it is 0 (under
#     --enable-recovery, Open MPI's mpirun exits 0 whatever rank 0 returns);
#   - no process of the job (a rank, a node's fork server or worker)
#     outlives it: every one of them inherits PPX_TEST_JOB, so after
#     mpirun returns none may be left with it in its environment.
# Usage: test_mpi_job.sh MPIRUN [mpirun arguments and the program]
# PPX_TEST_ANY_EXIT=1: mpirun's own status is not checked (a job whose
# rank 0 is killed on purpose).
mpirun=$1
shift
job="ppx-mpi-$$-$(date +%s%N)"
status="${TMPDIR:-/tmp}/$job.status"
errlog="${TMPDIR:-/tmp}/$job.stderr"
rm -f "$status"
# stderr also goes to a file: a sanitizer's report from a node that
# aborted fails the job even where mpirun's status is not checked.
exec 4>&1
{ env PPX_TEST_JOB="$job" PPX_TEST_STATUS="$status" \
    "$mpirun" -x PPX_TEST_JOB -x PPX_TEST_STATUS "$@" 2>&1 1>&4 4>&-; echo $? > "$status.rc"; } |
    tee "$errlog" >&2 &
# A TERM or INT for this script (timeout(1), a ^C) goes on to mpirun and
# the rest of this process group, and the checks below still run and
# kill what is left. sh runs a trap only between commands: hence the
# job in the background and a wait.
trap 'trap "" TERM INT; kill -TERM 0 2>/dev/null' TERM INT
wait $!
exec 4>&-
rc=$(cat "$status.rc" 2>/dev/null || echo 1)
rm -f "$status.rc"
left() {
    for e in /proc/[0-9]*/environ; do
        if { tr '\0' '\n' < "$e"; } 2>/dev/null | grep -qx "PPX_TEST_JOB=$job"; then
            p=${e#/proc/}
            echo "${p%/environ}"
        fi
    done
}
# A node's workers end through PR_SET_PDEATHSIG, which the kernel
# delivers as their parent exits: allow that a moment, never more.
alive=$(left)
i=0
while [ -n "$alive" ] && [ $i -lt 10 ]; do
    sleep 0.1
    alive=$(left)
    i=$((i + 1))
done
fail=0
if [ -n "$alive" ]; then
    echo "test_mpi_job: processes outlived the job:" >&2
    for p in $alive; do
        echo "  $p: $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)" >&2
        kill -9 "$p" 2>/dev/null
    done
    fail=1
fi
if grep -q -e "ERROR: AddressSanitizer" -e "runtime error:" "$errlog"; then
    echo "test_mpi_job: a sanitizer reported an error (above)" >&2
    fail=1
fi
rm -f "$errlog"
if [ ! -s "$status" ]; then
    echo "test_mpi_job: rank 0 wrote no result (mpirun exited $rc)" >&2
    fail=1
elif [ "$(cat "$status")" != 0 ]; then
    echo "test_mpi_job: rank 0's tests failed (mpirun exited $rc)" >&2
    fail=1
fi
rm -f "$status"
[ "${PPX_TEST_ANY_EXIT:-0}" = 1 ] && rc=0
[ $fail = 0 ] && [ $rc = 0 ] || exit 1
