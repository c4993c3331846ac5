#!/usr/bin/env bash
# deploy/test/three-hosts.sh BIN_DIR: the steps of deploy/postgres/README.md on one machine, with three network
# namespaces as its three hosts, to prove that they work as written: a PostgreSQL primary on host A with a
# synchronous streaming standby on host B; Orders on A, Payments on B, Inventory on C, all on the primary; an order
# placed and cancelled from outside through rescindctl; the primary killed, the standby promoted, the daemons
# pointed at it and restarted, the cancelled order still there and a new order placed and cancelled; then the
# databases dumped, restored under another name and checked with `rescindctl check`.
#
# BIN_DIR holds rescind-orders, rescind-payments, rescind-inventory and rescindctl (`swift build --show-bin-path`).
# Needs root (namespaces, a bridge), iproute2, python3, and Debian's PostgreSQL server (/usr/lib/postgresql/N/bin).
# Everything it makes (namespaces rsc-a, rsc-b, rsc-c, bridge rsc-br0, processes, a temporary directory) goes on
# exit; on failure it prints the daemons' and PostgreSQL's last log lines and keeps the directory.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1/rescindctl" ]; then
    echo "usage: $0 BIN_DIR (the directory of rescindctl and the daemons: swift build --show-bin-path)" >&2
    exit 2
fi
BIN=$(cd "$1" && pwd)
if [ "$(id -u)" -ne 0 ]; then
    echo "three hosts: must run as root (it makes network namespaces)" >&2
    exit 2
fi
PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2> /dev/null | sort -V | tail -n 1)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/postgres" ]; then
    echo "three hosts: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 2
fi
for ns in rsc-a rsc-b rsc-c; do
    # Never take over (or kill) what something else made: a run killed with SIGKILL leaves these behind.
    if ip netns list | grep -qw "$ns"; then
        echo "three hosts: namespace $ns exists (left by an earlier run?): ip netns pids $ns; ip netns del $ns" >&2
        exit 2
    fi
done

started=$SECONDS
# The files go to /dev/shm when it has room, unless TMPDIR says where: in memory, PostgreSQL's fsyncs cost nothing
# and removing its few thousand files takes no time (on a disk mounted with discard, 15 s).
shm_free_kib=$(df --output=avail -k /dev/shm 2> /dev/null | tail -n 1 | tr -d ' ') || shm_free_kib=0
if [ -z "${TMPDIR:-}" ] && [ "${shm_free_kib:-0}" -gt 1048576 ]; then TMPDIR=/dev/shm; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rescind-three-hosts.XXXXXX")
chmod 0755 "$WORK" # the postgres user reaches its data directories below it
mkdir -p "$WORK/config" "$WORK/logs" "$WORK/backup"

# The three hosts and what runs where.
NET=10.77.0
declare -A ADDRESS=([a]=$NET.1 [b]=$NET.2 [c]=$NET.3)
declare -A DAEMON_HOST=([orders]=a [payments]=b [inventory]=c)
declare -A DAEMON_PORT=([orders]=7410 [payments]=7420 [inventory]=7430)
BASE=shop         # the daemons' databases: shop_orders, shop_payments, shop_inventory, shop_payments_processor
RESTORED=restored # the backup restored under this base name
DATABASES=(orders payments inventory payments_processor)

declare -A PID=()     # process ids of what this script started: daemons by name, servers as pg-a and pg-b
declare -A PG_LOG=()  # each server's log

# --- Helpers ---------------------------------------------------------------------------------------------------

say() { echo "three hosts: $*"; }

# wait_until WHAT SECONDS COMMAND...: runs COMMAND until it succeeds, or fails the run after SECONDS.
wait_until() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" > /dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "gave up after ${seconds}s waiting for $what" >&2
            return 1
        fi
        sleep 0.2
    done
}

# alive PID: the process exists and is not a zombie (a child of ours that died stays a zombie until reaped).
alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2> /dev/null) || return 1
    [ "$state" != Z ]
}
dead() { ! alive "$1"; }

# json_field KEY... < JSON: the value at that path (a number indexes a list).
json_field() {
    python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1:]:
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$@"
}

# as_postgres COMMAND...: runs a PostgreSQL tool (which refuses root) as the postgres user, for 60 s at most.
as_postgres() { timeout 60 setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

# psql_at HOST DATABASE SQL: one statement as the superuser admin, over TCP from the root namespace (the bridge).
# Every client command here has a deadline (timeout): a commit waiting for a standby that is not there waits forever.
psql_at() { timeout 30 "$PG_BIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$1" -p 5432 -U admin -d "$2" -c "$3"; }

# rctl ARGS...: rescindctl against the three hosts, from outside them, as an operator would.
rctl() {
    timeout 60 "$BIN/rescindctl" "$@" \
        --orders "${ADDRESS[a]}:7410" --payments "${ADDRESS[b]}:7420" --inventory "${ADDRESS[c]}:7430" \
        --ca "$WORK/pki/ca.pem" --cert "$WORK/pki/operator.pem" --key "$WORK/pki/operator-key.pem"
}

# start_in NAMESPACE KEY LOG COMMAND...: starts COMMAND in the host's namespace, in a session of its own (a signal
# to the script's group does not reach it), and records its pid under KEY. setsid, ip netns exec and setpriv each
# exec the next, so $! is the command's own pid. Disowned: the shell neither waits for it nor reports its death
# ("Killed"); alive, below, tells a dead one by its zombie state.
start_in() {
    local ns=$1 key=$2 log=$3
    shift 3
    setsid ip netns exec "$ns" "$@" >> "$log" 2>&1 < /dev/null &
    PID[$key]=$!
    disown "$!"
}

# stop PID SIGNAL SECONDS: sends SIGNAL, then waits for the process to end (SIGKILL after SECONDS).
stop() {
    local pid=$1 signal=$2 seconds=$3
    alive "$pid" || return 0
    kill "-$signal" "$pid" 2> /dev/null || true
    kill -CONT "$pid" 2> /dev/null || true # a stopped process acts on its signal only once continued
    wait_until "process $pid to stop" "$seconds" dead "$pid" || kill -KILL "$pid" 2> /dev/null || true
}

print_logs() {
    local file
    for file in "$WORK"/logs/*.log "${PG_LOG[@]}"; do
        [ -f "$file" ] || continue
        echo "--- $file (last 30 lines)"
        tail -n 30 "$file"
    done
}

cleanup() {
    local status=$? key
    trap - EXIT
    if [ "$status" -ne 0 ]; then
        say "failed (exit $status) after $((SECONDS - started))s; logs follow, files kept in $WORK" >&2
        print_logs >&2
    fi
    # The daemons before the servers they use; a server by a fast shutdown (SIGINT).
    for key in orders payments inventory; do [ -z "${PID[$key]:-}" ] || stop "${PID[$key]}" TERM 20; done
    for key in pg-b pg-a; do [ -z "${PID[$key]:-}" ] || stop "${PID[$key]}" INT 20; done
    for ns in rsc-a rsc-b rsc-c; do ip netns del "$ns" 2> /dev/null || true; done
    ip link del rsc-br0 2> /dev/null || true
    if [ "$status" -eq 0 ]; then rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Three hosts: a bridge in the root namespace, a namespace per host joined to it by a veth pair ---------------

ip link add rsc-br0 type bridge
ip addr add "$NET.254/24" dev rsc-br0
ip link set rsc-br0 up
for host in a b c; do
    ns=rsc-$host
    ip netns add "$ns"
    ip link add "rsc-$host-br" type veth peer name "rsc-$host-eth"
    ip link set "rsc-$host-br" master rsc-br0 up
    ip link set "rsc-$host-eth" netns "$ns"
    ip -n "$ns" link set "rsc-$host-eth" name eth0
    ip -n "$ns" addr add "${ADDRESS[$host]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
done
say "hosts a, b, c at ${ADDRESS[a]}, ${ADDRESS[b]}, ${ADDRESS[c]}"

# --- PostgreSQL: a primary on A, a synchronous streaming standby on B -------------------------------------------

# pg_start HOST: starts the server of that host's data directory, listening on the host's address only (on the
# command line, since pg_basebackup copies postgresql.conf to the standby). Its dynamic shared memory is a file in
# the data directory (mmap), not in /dev/shm, where a server killed below would leave it behind.
pg_start() {
    local host=$1 dir=$WORK/pg-$1
    PG_LOG[$host]=$dir/postgres.log
    start_in "rsc-$host" "pg-$host" "${PG_LOG[$host]}" setpriv --reuid=postgres --regid=postgres --init-groups -- \
        "$PG_BIN/postgres" -D "$dir/data" -c "listen_addresses=${ADDRESS[$host]}" -c port=5432 \
        -c "unix_socket_directories=$dir" -c dynamic_shared_memory_type=mmap
    wait_until "PostgreSQL on host $host to accept connections" 30 \
        "$PG_BIN/pg_isready" -q -h "${ADDRESS[$host]}" -p 5432 -U admin -d postgres
}

install -d -o postgres -g postgres "$WORK/pg-a" "$WORK/pg-b"
as_postgres "$PG_BIN/initdb" -D "$WORK/pg-a/data" -U admin -A trust -E UTF8 --no-locale --no-sync > /dev/null
cat >> "$WORK/pg-a/data/postgresql.conf" << 'EOF'
# Streaming replication (deploy/postgres/README.md).
wal_level = replica
max_wal_senders = 5
hot_standby = on
EOF
# A test's trust; a store gives each role a password (scram-sha-256) and lists its hosts.
cat >> "$WORK/pg-a/data/pg_hba.conf" << EOF
host all         admin,rescind $NET.0/24 trust
host replication replicator    $NET.0/24 trust
EOF
pg_start a
psql_at "${ADDRESS[a]}" postgres "CREATE ROLE replicator WITH REPLICATION LOGIN"
# The daemons' role owns their databases and nothing else: no superuser.
psql_at "${ADDRESS[a]}" postgres "CREATE ROLE rescind WITH LOGIN"

# The standby, from host B: a copy of the primary that follows it (-R: standby.signal and primary_conninfo, which
# carries application_name=host_b, the name synchronous_standby_names waits for).
ip netns exec rsc-b timeout 60 setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/pg_basebackup" \
    -d "host=${ADDRESS[a]} port=5432 user=replicator application_name=host_b" \
    -D "$WORK/pg-b/data" -R -X stream -c fast > "$WORK/pg-b/basebackup.log" 2>&1 || {
    cat "$WORK/pg-b/basebackup.log" >&2
    exit 1
}
pg_start b
# Only now does the primary wait, at each commit, for the standby named host_b to have it on disk: what a daemon
# was told is committed survives the primary's loss. Set before the standby runs, every commit would wait for it.
# ALTER SYSTEM writes A's postgresql.auto.conf alone: B, once promoted, waits for no standby it does not have.
psql_at "${ADDRESS[a]}" postgres "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (host_b)'"
psql_at "${ADDRESS[a]}" postgres "SELECT pg_reload_conf()" > /dev/null
standby_in_sync() {
    [ "$(psql_at "${ADDRESS[a]}" postgres "SELECT count(*) FROM pg_stat_replication
        WHERE application_name = 'host_b' AND state = 'streaming' AND sync_state = 'sync'")" = 1 ]
}
wait_until "the standby to stream synchronously" 30 standby_in_sync
# Each daemon's database must exist; the daemon makes its tables. (These commits wait for the standby too.)
for name in "${DATABASES[@]}"; do psql_at "${ADDRESS[a]}" postgres "CREATE DATABASE ${BASE}_$name OWNER rescind"; done
say "PostgreSQL primary on a, synchronous standby on b; databases ${DATABASES[*]/#/${BASE}_}"

# --- Certificates: each daemon's lists the address it is reached at ---------------------------------------------

"$BIN/rescindctl" certs init --dir "$WORK/pki" > /dev/null
for daemon in orders payments inventory; do
    "$BIN/rescindctl" certs issue --dir "$WORK/pki" --name "$daemon" --host "${ADDRESS[${DAEMON_HOST[$daemon]}]}" \
        > /dev/null
done
"$BIN/rescindctl" certs issue --dir "$WORK/pki" --name operator > /dev/null

# --- The daemons ------------------------------------------------------------------------------------------------

# write_config DAEMON: the daemon's configuration (deploy/*.json, adapted), on the primary at host A.
write_config() {
    local daemon=$1 host=${DAEMON_HOST[$1]} extra
    case $daemon in
    orders)
        extra='"peers": {
    "payments": [{ "host": "'${ADDRESS[b]}'", "port": 7420 }],
    "inventory": [{ "host": "'${ADDRESS[c]}'", "port": 7430 }]
  },'
        ;;
    payments) extra='"processor": { "fee_basis_points": 290, "fixed_fee": 30 },' ;;
    inventory) extra='' ;;
    esac
    cat > "$WORK/config/$daemon.json" << EOF
{
  "identity": "$daemon",
  "replica": "$daemon-$host",
  "listen": { "host": "${ADDRESS[$host]}", "port": ${DAEMON_PORT[$daemon]} },
  "tls": {
    "ca_certificate": "$WORK/pki/ca.pem",
    "certificate": "$WORK/pki/$daemon.pem",
    "private_key": "$WORK/pki/$daemon-key.pem"
  },
  "database": "postgres://rescind@${ADDRESS[a]}:5432/${BASE}_$daemon",
  $extra
  "log_level": "info"
}
EOF
}

start_daemons() {
    local daemon
    for daemon in inventory payments orders; do
        start_in "rsc-${DAEMON_HOST[$daemon]}" "$daemon" "$WORK/logs/$daemon.log" \
            "$BIN/rescind-$daemon" --config "$WORK/config/$daemon.json"
    done
    wait_until "all three daemons to answer health" 60 serving
    for daemon in inventory payments orders; do
        alive "${PID[$daemon]}" || { say "rescind-$daemon exited as it started" >&2 && return 1; }
    done
}

# serving: all three answer health; or one has exited, and waiting is pointless (start_daemons says which).
serving() {
    local daemon
    for daemon in inventory payments orders; do alive "${PID[$daemon]}" || return 0; done
    rctl health --json
}

stop_daemons() {
    local daemon
    for daemon in orders payments inventory; do stop "${PID[$daemon]}" TERM 20; done
}

for daemon in orders payments inventory; do write_config "$daemon"; done
start_daemons
say "orders on a, payments on b, inventory on c, on the primary at ${ADDRESS[a]}; health: all serving"

# --- An order placed and cancelled ------------------------------------------------------------------------------

# saga_state ORDER: the state of the order's newest saga.
saga_state() { rctl sagas list --order "$1" --limit 1 --json | json_field sagas 0 state; }
saga_completed() { [ "$(saga_state "$1")" = completed ]; }

# place_and_cancel CUSTOMER: places an order of 2 MUG and cancels it; prints its id once its saga completed.
place_and_cancel() {
    local id
    id=$(rctl orders place --customer "$1" --line MUG:2:1500 --json | json_field id)
    rctl orders cancel "$id" --reason staff --json > /dev/null
    wait_until "the cancellation of $id to complete" 30 saga_completed "$id"
    echo "$id"
}

# expect_cancelled ORDER: cancelled, refunded in full, and Payments says refunded.
expect_cancelled() {
    local order status refunded total payment
    order=$(rctl orders show "$1" --json)
    status=$(json_field status <<< "$order")
    refunded=$(json_field amount_refunded <<< "$order")
    total=$(json_field total <<< "$order")
    payment=$(rctl payments show "$1" --json | json_field status)
    if [ "$status" != cancelled ] || [ "$refunded" != "$total" ] || [ "$payment" != refunded ]; then
        say "order $1 is $status, refunded $refunded of $total, payment $payment; expected cancelled and refunded" >&2
        return 1
    fi
}

rctl inventory set --sku MUG --location main --on-hand 10 --json > /dev/null
first=$(place_and_cancel first@example.com)
expect_cancelled "$first"
say "order $first placed, cancelled and refunded"

# --- Failover: the primary's machine dies, the standby becomes the primary --------------------------------------

# The machine's loss: SIGKILL to every PostgreSQL process of host A (postmaster, backends, WAL sender, writers) at
# once, nothing flushed or said goodbye. The postmaster is stopped first so that it starts no child meanwhile.
# (Its group is not enough: each child leads a process group of its own.)
postgres_pids() {
    local pid exe
    exe=$(readlink -f "$PG_BIN/postgres")
    for pid in $(ip netns pids "$1"); do
        if [ "$(readlink -f "/proc/$pid/exe" 2> /dev/null)" = "$exe" ] && alive "$pid"; then echo "$pid"; fi
    done
}
# kill_postgres NAMESPACE: kills what is left; succeeds once nothing is.
kill_postgres() {
    local pids
    pids=$(postgres_pids "$1")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086 # one pid a word
    kill -KILL $pids 2> /dev/null
    return 1
}
kill -STOP "${PID[pg-a]}"
wait_until "every PostgreSQL process on host a to die" 10 kill_postgres rsc-a
as_postgres "$PG_BIN/pg_ctl" promote -D "$WORK/pg-b/data" -w -t 30 > /dev/null
promoted() { [ "$(psql_at "${ADDRESS[b]}" postgres "SELECT pg_is_in_recovery()")" = f ]; }
wait_until "the standby to leave recovery" 30 promoted
# B runs with no synchronous standby (synchronous_standby_names is A's alone): until a new standby follows it, a
# commit is on B only. A store rebuilds A as B's standby and names it there (deploy/postgres/README.md).
say "primary on a killed; b promoted"

# The only change to the daemons' configurations: `database` names the new primary.
stop_daemons
sed -i "s#@${ADDRESS[a]}:5432/#@${ADDRESS[b]}:5432/#" "$WORK"/config/*.json
start_daemons
say "daemons restarted on the new primary at ${ADDRESS[b]}"

expect_cancelled "$first"
second=$(place_and_cancel second@example.com)
expect_cancelled "$second"
timeout 60 "$BIN/rescindctl" check --postgres "postgres://rescind@${ADDRESS[b]}:5432/$BASE" --json \
    > "$WORK/check-live.json" || {
    cat "$WORK/check-live.json" >&2
    exit 1
}
say "order $first still cancelled after the failover; order $second placed, cancelled and refunded; check passed"

# --- Backup and restore -----------------------------------------------------------------------------------------

# Each pg_dump is one database's snapshot; nothing runs between them here, so the four agree (a store stops Orders
# for the dump, or uses pg_basebackup with WAL archiving for one point in time: deploy/postgres/README.md).
for name in "${DATABASES[@]}"; do
    timeout 60 "$PG_BIN/pg_dump" -Fc -h "${ADDRESS[b]}" -p 5432 -U rescind -d "${BASE}_$name" \
        -f "$WORK/backup/$name.dump"
done
for name in "${DATABASES[@]}"; do
    psql_at "${ADDRESS[b]}" postgres "CREATE DATABASE ${RESTORED}_$name OWNER rescind"
    timeout 60 "$PG_BIN/pg_restore" --exit-on-error --no-owner -h "${ADDRESS[b]}" -p 5432 -U rescind \
        -d "${RESTORED}_$name" "$WORK/backup/$name.dump"
done
timeout 60 "$BIN/rescindctl" check --postgres "postgres://rescind@${ADDRESS[b]}:5432/$RESTORED" --json \
    > "$WORK/check-restored.json" || {
    cat "$WORK/check-restored.json" >&2
    exit 1
}
restored_status=$(psql_at "${ADDRESS[b]}" "${RESTORED}_orders" \
    "SELECT status FROM orders WHERE lower(id) = lower('$first')")
if [ "$restored_status" != cancelled ]; then
    say "order $first is '$restored_status' in the restored backup; expected cancelled" >&2
    exit 1
fi
say "four databases dumped with pg_dump -Fc, restored as ${RESTORED}_*, check passed"

say "placement and cancellation across hosts, failover to the synchronous standby, backup and restore:" \
    "passed in $((SECONDS - started))s"
