#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, so that the tests (and .ci/run on a clean
# machine) exercise sbatch/srun/sacct, submitit and Hydra's submitit launcher against real
# daemons instead of mocks.
#
#   scripts/slurm-cluster.sh start    install (Debian 12, root) if needed, configure, start; idempotent
#   scripts/slurm-cluster.sh stop     stop the daemons that start started; idempotent
#   scripts/slurm-cluster.sh status   sinfo and daemon states; exit 0 only if the cluster is usable
#
# State, configs, spool, pid and log files live in ${NEMOTRON_SLURM_HOME:-/var/tmp/nemotron-slurm};
# the accounting database lives there too, so wiping the folder resets job ids and accounting
# together. /etc/slurm/slurm.conf is a symlink to the generated file so that any later process
# can run sbatch, sacct, squeue... without extra environment variables.
# Accounting (slurmdbd + MariaDB) is not optional: without it sacct fails and submitit never
# notices a cancelled or killed job.
set -euo pipefail

STATE=${NEMOTRON_SLURM_HOME:-/var/tmp/nemotron-slurm}
TIMEOUT=${NEMOTRON_SLURM_TIMEOUT:-60}
CLUSTER=nemotron
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
ETC=$STATE/etc
LOG=$STATE/log
RUN=$STATE/run
CONF=$ETC/slurm.conf
DBD_CONF=$ETC/slurmdbd.conf
MYSQL_DATA=$STATE/mysql
# MariaDB's socket stays at the compiled-in default so that slurmdbd (StorageHost=localhost)
# and the mariadb client find it without a my.cnf.
MYSQL_RUN=/run/mysqld
MYSQL_SOCK=$MYSQL_RUN/mysqld.sock
MYSQL_PID=$MYSQL_RUN/mysqld.pid
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
SYSTEM_CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$CONF

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase() { echo "slurm-cluster: $* ($(elapsed) s)"; }
die() { echo "slurm-cluster: ERROR: $*" >&2; exit 1; }

# One line naming the daemon, its log and the log's last line, so a CI failure is readable as is.
fail_daemon() {
    local name=$1 log=$2 last=""
    [ -r "$log" ] && last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r')
    die "$name did not come up within ${TIMEOUT} s; see $log${last:+ (last line: $last)}"
}

# A pid file only counts if its process is alive and is the expected program: after a reboot or a
# crash the file stays behind and its pid may belong to something else.
pid_of() {
    local file=$1 comm=$2 pid
    [ -r "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    echo "$pid"
}

# Daemons are reparented to PID 1, which may reap late (seconds here): a zombie has exited.
alive() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Daemons must not inherit the caller's stdout (a pytest or CI pipe would never reach EOF), the
# lock on fd 9 (the next start would wait for it forever), nor the caller's environment (a test's
# venv PATH, TMPDIR or SLURM_* variables would outlive the test inside the daemons).
launch() {
    local log=$1
    shift
    setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SLURM_CONF="$CONF" "$@" \
        </dev/null >>"$log" 2>&1 9>&- &
}

wait_for() {
    local name=$1 log=$2
    shift 2
    local deadline=$(($(date +%s) + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail_daemon "$name" "$log"
        sleep 0.2
    done
}

stop_pid() {
    local name=$1 file=$2 comm=$3 pid _
    pid=$(pid_of "$file" "$comm") || { rm -f "$file"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$file"
    phase "stopped $name (pid $pid)"
}

# --- checks -----------------------------------------------------------------------------------

node_state() { timeout 10 sinfo -h -n localhost -o %T 2>/dev/null | head -n 1; }
ctld_up() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }
sacct_works() { timeout 10 sacct -n -X -S now >/dev/null 2>&1; }
node_usable() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing)$ ]]; }
cluster_usable() {
    command -v scontrol >/dev/null && ctld_up && node_usable && sacct_works
}
mysql_q() { mariadb --no-defaults --user=root --socket="$MYSQL_SOCK" --batch --skip-column-names "$@"; }
mysql_up() { mysql_q -e 'SELECT 1' >/dev/null 2>&1; }
munge_up() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
dbd_up() { port_open 6819 && timeout 10 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

# --- install ----------------------------------------------------------------------------------

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}) and not root"
    # Postinst scripts would start the services with the distribution's configs; a policy-rc.d
    # that answers 101 ("action forbidden") keeps them quiet. Only remove one we created.
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq >"$LOG/apt.log" 2>&1 ||
        die "apt-get update failed; see $LOG/apt.log"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" \
        >>"$LOG/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed; see $LOG/apt.log"
    if [ "$own_policy" = 1 ]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    phase "installed ${missing[*]}"
}

# --- configuration ----------------------------------------------------------------------------

# Hardware must match what slurmd detects exactly, else the node drains with "reconfigured
# socket/core boundaries".
node_hardware() {
    local line
    line=$(slurmd -C 2>/dev/null | head -n 1)
    [[ "$line" == NodeName=* ]] || die "slurmd -C printed no node line"
    echo "$line" | tr ' ' '\n' |
        grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' |
        tr '\n' ' ' | sed 's/ $//'
}

# NoCtldInAddrAny/NoInAddrAny bind slurmctld, slurmd, slurmdbd and clients to the first IPv4
# address of this machine's hostname instead of 0.0.0.0 (SlurmctldHost, NodeAddr and DbdAddr do
# not matter). That is loopback only where the hostname resolves to 127.x; elsewhere the daemons
# would become unreachable at localhost/127.0.0.1, so there they listen on all interfaces.
hostname_is_loopback() {
    [[ "$(getent ahostsv4 "$(uname -n)" 2>/dev/null | awk 'NR == 1 { print $1 }')" == 127.* ]]
}

render_slurm_conf() {
    local comm="# CommunicationParameters=NoCtldInAddrAny,NoInAddrAny: hostname is not loopback"
    hostname_is_loopback && comm=CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
    cat <<EOF
# Generated by scripts/slurm-cluster.sh; edits are overwritten on the next start.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
# A requeued job may start again cred_expire + 1 s after its requeue (default 120).
AuthInfo=cred_expire=20
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# No cgroup v1/v2 delegation in containers; plain process tracking works everywhere.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
MailProg=/bin/true
# Reject impossible requests at submission instead of letting them pend forever.
EnforcePartLimits=ALL
# A cancelled job holds its CPUs for KillWait (default 30 s).
KillWait=5
# Default batch_sched_delay adds ~3 s to every job.
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
$comm
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
NodeName=localhost NodeAddr=127.0.0.1 $1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

render_dbd_conf() {
    local comm="# CommunicationParameters=NoInAddrAny: hostname is not loopback"
    hostname_is_loopback && comm=CommunicationParameters=NoInAddrAny
    cat <<EOF
# Generated by scripts/slurm-cluster.sh; edits are overwritten on the next start.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
$comm
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$1
StorageLoc=slurm_acct_db
EOF
}

db_password() {
    local pass
    pass=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" 2>/dev/null || true)
    [ -n "$pass" ] || pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    echo "$pass"
}

# Writes $2 to $1 only when it differs; returns 0 if it changed.
write_if_changed() {
    local file=$1 content=$2
    [ -f "$file" ] && [ "$(cat "$file")" = "$content" ] && return 1
    printf '%s\n' "$content" >"$file.tmp"
    mv "$file.tmp" "$file"
    return 0
}

link_system_conf() {
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$CONF" ] && return 0
    if [ -e "$SYSTEM_CONF" ] && [ ! -L "$SYSTEM_CONF" ] && [ ! -e "$SYSTEM_CONF.orig" ]; then
        mv "$SYSTEM_CONF" "$SYSTEM_CONF.orig"
    fi
    ln -sfn "$CONF" "$SYSTEM_CONF"
}

# Ports 6817-6819 are fixed, so only one state folder can run at a time.
refuse_other_cluster() {
    local target other
    target=$(readlink "$SYSTEM_CONF" 2>/dev/null) || return 0
    [ "$target" = "$CONF" ] && return 0
    other=$(dirname "$(dirname "$target")")
    if pid_of "$other/run/slurmctld.pid" slurmctld >/dev/null ||
        pid_of "$other/run/slurmd.pid" slurmd >/dev/null ||
        pid_of "$other/run/slurmdbd.pid" slurmdbd >/dev/null; then
        die "a cluster from $other is running; stop it first: NEMOTRON_SLURM_HOME=$other $0 stop"
    fi
}

# --- daemons ----------------------------------------------------------------------------------

start_mariadb() {
    mkdir -p "$MYSQL_RUN"
    chown mysql:mysql "$MYSQL_RUN"
    touch "$LOG/mariadb.log"
    chown mysql:mysql "$LOG/mariadb.log"
    if [ ! -d "$MYSQL_DATA/mysql" ]; then
        rm -rf "$MYSQL_DATA"
        mkdir -p "$MYSQL_DATA"
        chown mysql:mysql "$MYSQL_DATA"
        # The data folder must be reachable by the mysql user through every parent folder.
        runuser -u mysql -- test -w "$MYSQL_DATA" ||
            die "user mysql cannot write $MYSQL_DATA (a parent folder of $STATE is closed to it)"
        mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL_DATA" \
            --auth-root-authentication-method=socket --skip-test-db \
            >>"$LOG/mariadb.log" 2>&1 || die "mariadb-install-db failed; see $LOG/mariadb.log"
    fi
    if ! pid_of "$MYSQL_PID" mariadbd >/dev/null; then
        rm -f "$MYSQL_PID"
        launch "$LOG/mariadb.log" mariadbd --no-defaults --user=mysql --datadir="$MYSQL_DATA" \
            --socket="$MYSQL_SOCK" --pid-file="$MYSQL_PID" --skip-networking \
            --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=64M \
            --innodb-lock-wait-timeout=900
    fi
    wait_for mariadb "$LOG/mariadb.log" mysql_up
}

setup_database() {
    local pass=$1
    mysql_q <<EOF || die "creating slurm_acct_db failed"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_munge() {
    mkdir -p "$MUNGE_RUN" /var/lib/munge
    chown munge:munge "$MUNGE_RUN" /var/lib/munge
    chmod 755 "$MUNGE_RUN"
    if [ ! -s /etc/munge/munge.key ]; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key >/dev/null
    fi
    # munged refuses a log file that its own user does not own.
    touch "$LOG/munged.log"
    chown munge:munge "$LOG/munged.log"
    if ! pid_of "$MUNGE_PID" munged >/dev/null; then
        rm -f "$MUNGE_PID"
        launch "$LOG/munged.log" runuser -u munge -- munged --log-file="$LOG/munged.log"
    fi
    wait_for munged "$LOG/munged.log" munge_up
}

start_slurmdbd() {
    if ! pid_of "$RUN/slurmdbd.pid" slurmdbd >/dev/null; then
        launch "$LOG/slurmdbd.log" slurmdbd
    fi
    wait_for slurmdbd "$LOG/slurmdbd.log" dbd_up
    if ! timeout 10 sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        timeout 10 sacctmgr -i add cluster "$CLUSTER" >/dev/null ||
            die "sacctmgr add cluster $CLUSTER failed; see $LOG/slurmdbd.log"
    fi
}

start_slurmctld() {
    if ! pid_of "$RUN/slurmctld.pid" slurmctld >/dev/null; then
        launch "$LOG/slurmctld.log" slurmctld -f "$CONF"
    fi
    wait_for slurmctld "$LOG/slurmctld.log" ctld_up
}

start_slurmd() {
    if ! pid_of "$RUN/slurmd.pid" slurmd >/dev/null; then
        launch "$LOG/slurmd.log" slurmd -f "$CONF" -N localhost
    fi
    local deadline=$(($(date +%s) + TIMEOUT)) state
    while :; do
        state=$(node_state)
        [[ "$state" =~ ^(idle|mixed|allocated|completing)$ ]] && return 0
        # A drain (e.g. left from an earlier configuration) outlives restarts; ReturnToService
        # only revives DOWN nodes.
        if [[ "$state" =~ drain ]]; then
            scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail_daemon "slurmd (node state: ${state:-none})" "$LOG/slurmd.log"
        sleep 0.2
    done
}

# slurmctld first: stopped after slurmd, it spends ~5 s on a message to the vanished slurmd.
stop_slurm_daemons() {
    stop_pid slurmctld "$RUN/slurmctld.pid" slurmctld
    stop_pid slurmd "$RUN/slurmd.pid" slurmd
    stop_pid slurmdbd "$RUN/slurmdbd.pid" slurmdbd
}

# --- commands ---------------------------------------------------------------------------------

cmd_start() {
    [ "$(id -u)" -eq 0 ] || die "start needs root"
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 600 9 || die "another start/stop holds $STATE/.lock"

    local hw="" slurm_conf
    if command -v slurmd >/dev/null; then
        hw=$(node_hardware)
        slurm_conf=$(render_slurm_conf "$hw")
        if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$slurm_conf" ] && [ -f "$DBD_CONF" ] &&
            [ "$(cat "$DBD_CONF")" = "$(render_dbd_conf "$(db_password)")" ] &&
            [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$CONF" ] && cluster_usable; then
            phase "already running"
            return 0
        fi
    fi

    mkdir -p "$ETC" "$LOG" "$RUN" "$STATE/ctld" "$STATE/spool"
    chmod 755 "$STATE" "$LOG"
    ensure_packages
    phase "packages ready"
    refuse_other_cluster

    [ -n "$hw" ] || hw=$(node_hardware)
    local pass changed=0
    pass=$(db_password)
    write_if_changed "$CONF" "$(render_slurm_conf "$hw")" && changed=1
    # Written through umask 077 so the database password is never world-readable, not even briefly.
    (umask 077 && write_if_changed "$DBD_CONF" "$(render_dbd_conf "$pass")") && changed=1
    chown root:root "$DBD_CONF"
    chmod 600 "$DBD_CONF"
    chmod 644 "$CONF"
    link_system_conf
    # Daemons read their configuration only at start.
    if [ "$changed" = 1 ]; then
        stop_slurm_daemons
    fi
    phase "configuration written to $ETC"

    start_mariadb
    setup_database "$pass"
    phase "mariadb up"
    start_munge
    phase "munged up"
    start_slurmdbd
    phase "slurmdbd up"
    start_slurmctld
    phase "slurmctld up"
    start_slurmd
    phase "slurmd up, node localhost $(node_state)"
    wait_for "slurmdbd (sacct)" "$LOG/slurmdbd.log" sacct_works
    phase "cluster ready (state and logs in $STATE)"
}

cmd_stop() {
    if [ -d "$STATE" ]; then
        exec 9>"$STATE/.lock"
        flock -w 600 9 || die "another start/stop holds $STATE/.lock"
    fi
    stop_slurm_daemons
    stop_pid munged "$MUNGE_PID" munged
    # Only the MariaDB that serves this state folder, not some other one on the machine.
    local pid
    if pid=$(pid_of "$MYSQL_PID" mariadbd) && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--datadir=$MYSQL_DATA "; then
        stop_pid mariadb "$MYSQL_PID" mariadbd
    fi
    phase "stopped"
}

cmd_status() {
    if command -v sinfo >/dev/null && ctld_up; then
        timeout 10 sinfo || true
    else
        echo "slurmctld: not answering"
    fi
    local name file comm pid
    for spec in "mariadb:$MYSQL_PID:mariadbd" "munged:$MUNGE_PID:munged" \
        "slurmdbd:$RUN/slurmdbd.pid:slurmdbd" "slurmctld:$RUN/slurmctld.pid:slurmctld" \
        "slurmd:$RUN/slurmd.pid:slurmd"; do
        IFS=: read -r name file comm <<<"$spec"
        if pid=$(pid_of "$file" "$comm"); then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running"
        fi
    done
    echo "state and logs: $STATE"
    if cluster_usable; then
        echo "cluster: usable"
    else
        echo "cluster: NOT usable"
        return 1
    fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
