#!/usr/bin/env bash
# test_two_nodes.sh — a dealer job on two nodes for real, made of namespaces on this machine.
#
# Each node is a network namespace (`ip netns add`) whose processes also get a UTS namespace with the node's own
# host name (Open MPI decides which ranks share a node from the host it launched them on, and prints it). The two
# are joined by a veth pair addressed 10.213.7.1/30 and .2/30; those addresses exist only inside the two namespaces,
# so no traffic leaves them and nothing on the machine's own networks changes. Open MPI is restricted to TCP
# (--mca btl tcp,self: no shared memory; every byte between the nodes crosses the veth, and two ranks on one node
# talk TCP too) with both its MPI and its out-of-band traffic pinned to the /30. launch/mpirun.sh runs inside node 1
# with a hostfile; a remote-shell agent (--mca plm_rsh_agent) enters node 2 instead of ssh, with a fresh
# environment as ssh would give, so the remote rank sees only what mpirun forwards (-x OMP_NUM_THREADS, ...).
#
# Checks (the "Several nodes" section of docs/launching.md says what they back):
#   1. 2 nodes x 1 rank, the launcher's default threads: start-up names two nodes, each running one rank as local
#      rank 0 with this machine's cores as threads (cores / 1 rank per node); ZeRO-1 makes rank 1 write its half of
#      the optimizer state into the checkpoint from node 2; both checkpoints and `latest` appear.
#   2. 1 node x 2 ranks, the same threads per rank: start-up names one node running ranks 0-1 as local ranks 0-1;
#      its checkpoint equals run 1's bit for bit (`dealer ckpt diff --tol 0`, every parameter and optimizer state).
#   3. run 1 resumed on two nodes from its step-10 checkpoint ends equal to run 1 bit for bit: every rank read it,
#      rank 1 from node 2, and the half of the optimizer state that rank 1 wrote from node 2 was really there.
#   4. kill -9 of rank 1 inside node 2 ends rank 0 on node 1 and mpirun within comm.timeout_s + 10 s, non-zero, with
#      a message naming the dead rank; no process is left in either namespace. OMP_NUM_THREADS=1 set on node 1
#      reaches node 2 (start-up shows 1 thread there).
#   5. an FFM run with comm.embeddings: shared (one table in one node's shared memory) on two nodes is refused,
#      non-zero, naming the cause and comm.embeddings: sharded.
#
# Why --tol 0 holds in 2 and 3: the runs differ only in where the ranks run, never in what they compute. Both have
# world size 2, the same per-rank batch and the same thread count (so the same shards, shapes and kernel splits);
# the gradient exchange sums in rank order over point-to-point messages (comm/exchange.c), whatever the transport or
# the host; both runs use TCP. Resume is bit-exact by design (docs/checkpoint-format.md). The data-parallel
# tolerance of tests/mpi/test_equivalence.c (relative 1e-5) is for W ranks against one, where sums are reassociated;
# nothing is reassociated here, so nothing but bit-identity is right.
#
# Skips (exit 77, one line) only where namespaces cannot be made: not root, or the kernel refuses (no
# CAP_SYS_ADMIN). Names carry this shell's PID and a random tag, so concurrent runs never collide; namespaces and
# every process in them are removed on any exit, and the namespaces and files a killed earlier run left behind (its
# PID gone) are removed at start.
set -euo pipefail
dealer=${DEALER_BIN:?DEALER_BIN must point at the dealer binary}
src=${DEALER_SOURCE_DIR:?DEALER_SOURCE_DIR must point at the repository}
prefix=dealer-2n
fail() {
  echo "FAIL: $*" >&2
  for f in "${work:-/nonexistent}"/*.log; do [[ -f $f ]] && { echo "== $f" >&2; tail -n 15 "$f" >&2; }; done
  exit 1
}

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: test_two_nodes needs root to create network namespaces (CI runs as root)"
  exit 77
fi
for tool in ip unshare mpirun; do
  command -v "$tool" >/dev/null || fail "'$tool' not found: run scripts/setup (iproute2, util-linux, openmpi-bin)"
done
if ! unshare --net --uts true 2>/dev/null; then
  echo "SKIP: test_two_nodes: this machine refuses new network and UTS namespaces (no CAP_SYS_ADMIN)"
  exit 77
fi

# Removes a namespace of ours and every process in it.
remove_namespace() {
  local pid
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  ip netns delete "$1" 2>/dev/null || true
}
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
  [[ $ns =~ ^$prefix-([0-9]+)-[0-9a-f]+-[12]$ ]] || continue
  kill -0 "${BASH_REMATCH[1]}" 2>/dev/null || remove_namespace "$ns"
done
for dir in /tmp/"$prefix"-*; do
  [[ $dir =~ ^/tmp/$prefix-([0-9]+)-[0-9a-f]+\.[A-Za-z0-9]+$ && -d $dir ]] || continue
  kill -0 "${BASH_REMATCH[1]}" 2>/dev/null || rm -rf "$dir"
done

tag=$$-$(printf '%04x%04x' $RANDOM $RANDOM)
ns1=$prefix-$tag-1 ns2=$prefix-$tag-2
host1=node1-$tag host2=node2-$tag
work=$(mktemp -d "/tmp/$prefix-$tag.XXXXXX")
job=""
cleanup() {
  if [[ -n $job ]]; then
    kill -TERM "$job" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$job" 2>/dev/null || true
  fi
  remove_namespace "$ns1"
  remove_namespace "$ns2"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
t_start=$(date +%s%N)

# ---- the two nodes ----------------------------------------------------------------------------------------------
ip netns add "$ns1" || fail "cannot create network namespace $ns1"
ip netns add "$ns2" || fail "cannot create network namespace $ns2"
ip -n "$ns1" link add dl0 type veth peer name dl0 netns "$ns2" ||
  fail "cannot create a veth pair between $ns1 and $ns2 (a kernel without veth support?)"
ip -n "$ns1" addr add 10.213.7.1/30 dev dl0 || fail "cannot address dl0 in $ns1"
ip -n "$ns2" addr add 10.213.7.2/30 dev dl0 || fail "cannot address dl0 in $ns2"
for ns in "$ns1" "$ns2"; do
  ip -n "$ns" link set lo up && ip -n "$ns" link set dl0 up || fail "cannot bring up lo and dl0 in $ns"
done

# node_exec NODE CMD...: runs CMD on NODE: in its network namespace, with its host name in a UTS namespace.
cat >"$work/node_exec" <<EOF
#!/usr/bin/env bash
case \$1 in
  $host1) ns=$ns1 ;;
  $host2) ns=$ns2 ;;
  *) echo "node_exec: unknown node '\$1'" >&2; exit 255 ;;
esac
node=\$1; shift
exec ip netns exec "\$ns" unshare --uts -- sh -c 'hostname "\$0" && exec "\$@"' "\$node" "\$@"
EOF
# A node's own environment: what a login shell there would have. The sanitizer settings of an ASan build belong to
# the machine (ctest sets them), so node 2 has them too.
node_env=(PATH="$PATH" HOME="${HOME:-/}")
for var in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do [[ -n ${!var:-} ]] && node_env+=("$var=${!var}"); done
# What mpirun runs instead of ssh: "rsh_agent HOST COMMAND WORDS...". Like sshd, run the words as one command line
# in the node's fresh environment.
{
  echo '#!/usr/bin/env bash'
  echo 'node=$1; shift'
  printf 'exec %q "$node" env -i' "$work/node_exec"
  printf ' %q' "${node_env[@]}"
  echo ' sh -c "$*"'
} >"$work/rsh_agent"
chmod 755 "$work/node_exec" "$work/rsh_agent"
[[ $("$work/node_exec" "$host2" hostname) == "$host2" ]] || fail "node 2 does not see its own host name"
"$work/node_exec" "$host1" ip -br addr show dl0 | grep -q "10.213.7.1/30" || fail "node 1 has no 10.213.7.1 on dl0"

# ---- data and the job -------------------------------------------------------------------------------------------
head -c 60000 "$src/data/tinyshakespeare.txt" >"$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" >/dev/null
printf '%s slots=1\n%s slots=1\n' "$host1" "$host2" >"$work/two_nodes"
printf '%s slots=2\n' "$host1" >"$work/one_node"
config=$src/configs/gpt-shakespeare.yaml
timeout_s=20 # comm.timeout_s: far above a step of this tiny model on a loaded CI machine (ASan, ctest -j2)
args=(data.train="$work/train.tfrecord" data.valid= model.n_layer=2 model.n_head=2 model.n_embd=32
      model.max_seq_len=64 data.seq_len=64 train.batch_per_rank=2 train.eval_every=0 log.every=1
      log.tensorboard=false comm.zero=1 comm.bucket_mb=0.01 comm.timeout_s=$timeout_s train.threads=0)
cores=$("$work/node_exec" "$host1" env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)

# launch NAME HOSTFILE [VAR=VALUE...] -- [key=value...]: 2 ranks through launch/mpirun.sh inside node 1, in a clean
# environment (ctest's OMP_NUM_THREADS and oversubscription settings must not leak in); output in NAME.log.
# OMP_WAIT_POLICY=passive (the launcher forwards it with -x): both nodes share this machine's cores, and OpenMP
# threads spinning between kernels on one node starve the other node's rank of the core it needs to progress MPI
# (20 steps took 10 s instead of 1 s on 2 cores); real nodes have cores of their own. It changes no result.
launch() {
  local name=$1 hosts=$2; shift 2
  local vars=(OMP_WAIT_POLICY=passive)
  while [[ $1 != -- ]]; do vars+=("$1"); shift; done
  shift
  "$work/node_exec" "$host1" env -i "${node_env[@]}" "${vars[@]}" \
    "$src/launch/mpirun.sh" -n 2 --hostfile "$work/$hosts" --dealer "$dealer" \
    --mca plm_rsh_agent "$work/rsh_agent" --mca btl tcp,self \
    --mca btl_tcp_if_include 10.213.7.0/30 --mca oob_tcp_if_include 10.213.7.0/30 \
    "$config" run.dir="$work/$name" "${args[@]}" "$@" >"$work/$name.log" 2>&1
}
plural() { (($1 == 1)) && echo "$1 thread" || echo "$1 threads"; }
expect_line() { # expect_line LOG TEXT: the start-up line, whole
  grep -qF "INFO] $2" "$work/$1.log" || fail "$1: no start-up line '$2': $(grep -m3 'INFO\]' "$work/$1.log")"
}
ckpt() { echo "$work/$1/ckpt/step_$(printf %08d "$2").h5"; }
steps_logged() { local n; n=$(grep -c '^step' "$work/$1.log" 2>/dev/null) || true; echo "${n:-0}"; }

# 1. two nodes, one rank each, the launcher's default threads
t0=$(date +%s%N)
launch two two_nodes -- train.steps=20 ckpt.every=10 || fail "the two-node run failed"
echo "two nodes x 1 rank: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
threads=$cores
expect_line two "2 nodes: $host1 runs rank 0 (local rank 0, $(plural "$threads")); $host2 runs rank 1 (local rank 0, $(plural "$threads"))"
grep -q "^+ OMP_NUM_THREADS=$threads .*--hostfile $work/two_nodes" "$work/two.log" ||
  fail "the launcher did not give $threads threads ($cores cores / 1 rank per node)"
for step in 10 20; do [[ -s $(ckpt two $step) ]] || fail "no checkpoint at step $step"; done
[[ $(cat "$work/two/ckpt/latest") == step_00000020.h5 ]] || fail "latest: $(cat "$work/two/ckpt/latest")"
"$dealer" ckpt show "$(ckpt two 20)" >"$work/show.log" || fail "dealer ckpt show failed on the two-node checkpoint"
grep -qE "^world_size +2$" "$work/show.log" || fail "the checkpoint does not record world size 2"
grep -qE "^zero_stage +1$" "$work/show.log" || fail "the checkpoint does not record ZeRO-1"

# 2. one node, two ranks, the same threads per rank
t0=$(date +%s%N)
launch one one_node OMP_NUM_THREADS="$threads" -- train.steps=20 ckpt.every=10 || fail "the one-node run failed"
echo "one node x 2 ranks: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
expect_line one "1 node: $host1 runs ranks 0-1 (local ranks 0-1, $(plural "$threads") each)"
"$dealer" ckpt diff "$(ckpt one 20)" "$(ckpt two 20)" --tol 0 >"$work/diff.log" ||
  fail "two nodes and one node differ: $(grep -m5 DIFFERS "$work/diff.log")"
grep -q "/optimizer/adam_m/" "$work/diff.log" || fail "the diff did not compare the optimizer state"
grep -F "bit for bit" "$work/diff.log"

# 3. resume on two nodes from the two-node step-10 checkpoint
t0=$(date +%s%N)
launch resumed two_nodes -- train.steps=20 ckpt.every=10 train.resume="$(ckpt two 10)" || fail "the resumed run failed"
echo "two nodes, resumed at step 10: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -q "resumed from $(ckpt two 10) at step 10" "$work/resumed.log" || fail "the run did not resume"
"$dealer" ckpt diff "$(ckpt resumed 20)" "$(ckpt two 20)" --tol 0 >"$work/diff.log" ||
  fail "the resumed two-node run differs: $(grep -m5 DIFFERS "$work/diff.log")"

# 4. kill -9 of rank 1 on node 2
launch kill two_nodes OMP_NUM_THREADS=1 -- train.steps=1000000 ckpt.every=0 &
job=$!
for ((i = 0; i < 600; i++)); do
  (($(steps_logged kill) >= 3)) && break
  kill -0 "$job" 2>/dev/null || fail "the job ended before training"
  sleep 0.1
done
(($(steps_logged kill) >= 3)) || fail "the job did not train within 60 s"
expect_line kill "2 nodes: $host1 runs rank 0 (local rank 0, 1 thread); $host2 runs rank 1 (local rank 0, 1 thread)"
victim=""
dealer_exe=$(readlink -f "$dealer")
for pid in $(ip netns pids "$ns2"); do
  # By its binary, not its name: dealer re-executes itself once at start (to pick OpenBLAS's kernel).
  if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$dealer_exe" ]] &&
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then
    victim=$pid
  fi
done
[[ -n $victim ]] || fail "no rank 1 among node 2's processes: $(ip netns pids "$ns2" | xargs -r ps -o pid,comm -p)"
t0=$(date +%s%N)
kill -KILL "$victim"
code=0
wait "$job" || code=$?
job=""
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "kill -9 of rank 1 on node 2: mpirun exited $code after $took_ms ms"
((code != 0)) || fail "the job exited 0 after rank 1 was killed"
((took_ms <= (timeout_s + 10) * 1000)) || fail "the job took $took_ms ms to end, want at most comm.timeout_s + 10 s"
# Whoever notices first says so: mpirun (node 2's daemon saw its rank die), rank 0's watchdog, or rank 0's MPI
# call failing on the broken connection.
said="rank 1 with PID [0-9]+ on node $host2 exited on signal 9|rank 1 had not arrived|error \(rank 0\):.*MPI"
grep -m1 -E "$said" "$work/kill.log" || fail "no message says that rank 1 died"
for ((i = 0; i < 50; i++)); do
  [[ -z $(ip netns pids "$ns1")$(ip netns pids "$ns2") ]] && break
  sleep 0.1
done
left=$(ip netns pids "$ns1"; ip netns pids "$ns2")
[[ -z $left ]] || fail "processes left after the job ended: $(echo "$left" | xargs -r ps -o pid,comm -p)"

# 5. comm.embeddings shared needs one node
"$dealer" data convert --format libffm "$src/data/criteo/tr1599.ffm" -o "$work/clicks.tfrecord" >/dev/null
config=$src/configs/ffm-criteo.yaml
args=(data.train="$work/clicks.tfrecord" data.valid= train.steps=2 train.threads=1 comm.embeddings=shared
      comm.timeout_s=$timeout_s log.tensorboard=false)
code=0
launch shared two_nodes -- || code=$?
((code != 0)) || fail "comm.embeddings shared ran across two nodes"
grep -q "span several nodes" "$work/shared.log" || fail "shared across nodes: no message names the cause: $(tail -3 "$work/shared.log")"
grep -q "comm.embeddings: sharded" "$work/shared.log" || fail "shared across nodes: the hint does not name sharded"
echo "comm.embeddings shared on two nodes: refused ($(grep -m1 -o 'span several nodes[^;]*' "$work/shared.log"))"

echo "two nodes: ok in $(( ($(date +%s%N) - t_start) / 1000000 )) ms"
