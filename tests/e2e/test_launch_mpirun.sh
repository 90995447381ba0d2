#!/usr/bin/env bash
# test_launch_mpirun.sh — launch/mpirun.sh: the command it builds (--bind-to none, --map-by slot, threads per rank,
# Open MPI's root variables only for root), its one-line errors, and a real 2-rank run as an unprivileged user in
# which `kill -USR1` of the launcher reaches every rank (they checkpoint and exit 75). The ranks run
# tests/slurm/fake_trainer.sh through --dealer, so this checks the launcher, not the trainer.
set -euo pipefail
src=${DEALER_SOURCE_DIR:?DEALER_SOURCE_DIR must point at the repository}
fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d /tmp/dealer-mpirun-test.XXXXXX)
pid=""
cleanup() {
  # mpirun takes its ranks down on SIGTERM; SIGKILL only if it does not go.
  if [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; then
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# Copies an unprivileged user can read whatever the checkout's permissions (CI may clone under /root).
chmod 755 "$work"
install -m 755 "$src/launch/mpirun.sh" "$work/mpirun.sh"
install -m 755 "$src/tests/slurm/fake_trainer.sh" "$work/fake_trainer.sh"
echo "# fake_trainer.sh only checks that the config exists" >"$work/cfg.yaml"
chmod 644 "$work/cfg.yaml"
launcher=$work/mpirun.sh
fake=$work/fake_trainer.sh
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)

# Runs the launcher with a clean environment (ctest exports Open MPI's root variables), as USER when given.
as_user=()
if [[ $(id -u) -eq 0 ]]; then as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups); fi
clean() { env -i PATH="$PATH" HOME=/tmp "$@"; }
dry() { clean "$launcher" --dry-run --dealer "$fake" "$@" 2>&1; }

# ---- the command --------------------------------------------------------------------------------------------
out=$(dry -n 2 "$work/cfg.yaml" optim.lr=3e-4)
for want in "mpirun -np 2 " "--bind-to none" "--map-by slot" "-x OMP_NUM_THREADS" "train $work/cfg.yaml optim.lr=3e-4"; do
  grep -qF -- "$want" <<<"$out" || fail "command lacks '$want': $out"
done
want_threads=$((cores / 2)); ((want_threads >= 1)) || want_threads=1
grep -q "^+ OMP_NUM_THREADS=$want_threads " <<<"$out" || fail "want OMP_NUM_THREADS=$want_threads ($cores cores / 2 ranks): $out"
if [[ $(id -u) -eq 0 ]]; then
  grep -q "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" <<<"$out" || fail "root run lacks the root variables: $out"
  user_out=$(clean "${as_user[@]}" "$launcher" --dry-run --dealer "$fake" -n 2 "$work/cfg.yaml" 2>&1)
  grep -q OMPI_ALLOW_RUN_AS_ROOT <<<"$user_out" && fail "the root variables are set for a normal user: $user_out"
  grep -q -- "--bind-to none" <<<"$user_out" || fail "normal user's command: $user_out"
fi
out=$(clean OMP_NUM_THREADS=3 "$launcher" --dry-run --dealer "$fake" -np 4 "$work/cfg.yaml" 2>&1)
grep -q "^+ OMP_NUM_THREADS=3 " <<<"$out" || fail "a set OMP_NUM_THREADS was not kept: $out"
((4 > cores)) && { grep -q -- "--oversubscribe" <<<"$out" || fail "4 ranks on $cores cores without --oversubscribe: $out"; }
out=$(dry -n 16 --hosts a:8,b:8 "$work/cfg.yaml")
grep -q -- "--host a:8,b:8" <<<"$out" || fail "--hosts not passed on: $out"
grep -q -- "--oversubscribe" <<<"$out" && fail "--oversubscribe with a host list: $out"
want_threads=$((cores / 8)); ((want_threads >= 1)) || want_threads=1
grep -q "^+ OMP_NUM_THREADS=$want_threads " <<<"$out" || fail "8 ranks per host: want $want_threads threads: $out"
printf 'a slots=2\n# a comment\nb slots=2\n' >"$work/hosts"
out=$(dry -n 4 --hostfile "$work/hosts" "$work/cfg.yaml")
grep -q -- "--hostfile $work/hosts" <<<"$out" || fail "--hostfile not passed on: $out"
out=$(dry -n 2 --hostfile "$work/hosts" --mca btl tcp,self --mca btl_tcp_if_include 10.213.7.0/30 "$work/cfg.yaml")
grep -qF -- "--map-by slot --mca btl tcp,self --mca btl_tcp_if_include 10.213.7.0/30 --hostfile $work/hosts" <<<"$out" ||
  fail "--mca not passed on in order: $out"
out=$(dry -n 1 "$work/cfg.yaml" "run.dir=a b")
grep -qF 'run.dir=a\ b' <<<"$out" || fail "an argument with a space is not quoted: $out"

help=$(clean "$launcher" --help)
grep -qF -- "--mca NAME VALUE" <<<"$help" || fail "--help does not list --mca: $help"
grep -q "^set \|^root=" <<<"$help" && fail "--help prints the script's code: $help"

# ---- bad usage: exit 2 and one line -------------------------------------------------------------------------
expect_usage_error() { # expect_usage_error MESSAGE ARGS...
  local want=$1; shift
  set +e; local err; err=$(clean "$launcher" "$@" 2>&1 >/dev/null); local rc=$?; set -e
  [[ $rc == 2 ]] || fail "'mpirun.sh $*' exited $rc, want 2 ($err)"
  [[ $(wc -l <<<"$err") == 1 ]] || fail "'mpirun.sh $*' error is not one line: $err"
  grep -qF -- "$want" <<<"$err" || fail "'mpirun.sh $*' said '$err', want '$want'"
}
expect_usage_error "missing CONFIG" --dealer "$fake"
expect_usage_error "-n needs a positive integer, got '0'" -n 0 --dealer "$fake" "$work/cfg.yaml"
expect_usage_error "config '$work/nope.yaml' not found" --dealer "$fake" "$work/nope.yaml"
expect_usage_error "no dealer binary at $work/nope" --dealer "$work/nope" "$work/cfg.yaml"
expect_usage_error "unknown option '--bogus'" --bogus "$work/cfg.yaml"
expect_usage_error "--mca needs a parameter name and a value" --mca btl
expect_usage_error "--mca: 'btl tcp' is not an Open MPI parameter name" --mca "btl tcp" self "$work/cfg.yaml"
expect_usage_error "--mca btl needs a value" --mca btl "" "$work/cfg.yaml"
expect_usage_error "give --hosts or --hostfile, not both" --hosts a:1 --hostfile "$work/hosts" "$work/cfg.yaml"

# ---- a real run as an unprivileged user: SIGUSR1 to the launcher reaches the ranks ---------------------------
run=$work/run
mkdir -m 777 "$run"
cd "$work"
# Not through clean(): a backgrounded function is a subshell, and $! would be that shell, not mpirun.
env -i PATH="$PATH" HOME=/tmp FAKE_STEP_S=0.1 "${as_user[@]}" "$launcher" -n 2 --dealer "$fake" "$work/cfg.yaml" "run.dir=$run/r" train.steps=400 \
  >"$work/out.txt" 2>&1 &
pid=$!
for ((i = 0; i < 200; i++)); do
  [[ -f $run/r/metrics.jsonl ]] && (($(wc -l <"$run/r/metrics.jsonl") >= 3)) && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -USR1 "$pid" 2>/dev/null || fail "the run ended before the signal: $(cat "$work/out.txt")"
rc=0
for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fail "mpirun still running 30 s after SIGUSR1"; fi
wait "$pid" || rc=$?
[[ $rc == 75 ]] || fail "mpirun exited $rc after SIGUSR1, want 75: $(cat "$work/out.txt")"
grep -q "stopping on SIGUSR1" "$work/out.txt" || fail "the ranks did not see SIGUSR1: $(cat "$work/out.txt")"
[[ -s $run/r/ckpt/latest ]] || fail "no checkpoint after the stop"
who=$(id -un); ((${#as_user[@]})) && who=nobody
echo "launch/mpirun.sh: ok (the 2-rank run ran as $who)"
