# The start every tests/gpu/check_*.sh shares (not a check itself: without the check_ prefix,
# device_check.sh and check.sh do not run it as one); sourced from the repository root after `cd`.
#   PY         the peer Python: $PY, else .venv's, else python3
#   say        one line on stdout (the check's log and verdicts)
#   need_gpu MESSAGE [DRY]
#              exit 0 with MESSAGE (the check's "...: SKIP: no NVIDIA GPU ..." line) unless
#              nvidia-smi lists a GPU or DRY is 1 (a dry run, to try a script on the CPU emulator)
#   want STEP  true when STEP is one of the words of $STEPS (the steps to run)
#   result STEP STATUS [DETAIL]
#              "$CHECK STEP: STATUS (DETAIL)"; a FAIL is added to the array fails
# shellcheck shell=bash
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
fails=()
say() { printf '%s\n' "$*"; }
have_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
need_gpu() { [ "${2:-0}" = 1 ] || have_gpu || { say "$1"; exit 0; }; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
result() { say "$CHECK $1: $2${3:+ ($3)}"; [ "$2" = FAIL ] && fails+=("$1"); return 0; }
