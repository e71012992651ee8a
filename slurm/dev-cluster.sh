#!/usr/bin/env bash
# Bring up / tear down a real single-node Slurm cluster with accounting
# (munged, MariaDB, slurmdbd, slurmctld, slurmd) on localhost, without systemd.
#
# Usage: slurm/dev-cluster.sh install|start|stop|status
# Needs root. All state lives under $SYNTHGEN_SLURM_STATE (default /var/tmp/synthgen-slurm);
# the configs go to /etc/slurm, where the Slurm clients look for them. Readiness waits are
# bounded by $SYNTHGEN_SLURM_TIMEOUT seconds (default 60). Every start begins from empty
# state: job ids restart at 1 and the accounting database is new.
set -euo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

readonly CLUSTER_NAME="synthgen-dev"
readonly NODE_NAME="localhost"
readonly STATE_DIR="${SYNTHGEN_SLURM_STATE:-/var/tmp/synthgen-slurm}"
readonly TIMEOUT_S="${SYNTHGEN_SLURM_TIMEOUT:-60}"
readonly PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server-core mariadb-client-core)

readonly SLURM_ETC="/etc/slurm"
readonly SLURM_CONF="$SLURM_ETC/slurm.conf"
readonly CGROUP_CONF="$SLURM_ETC/cgroup.conf"
readonly SLURMDBD_CONF="$SLURM_ETC/slurmdbd.conf"

readonly RUN_DIR="$STATE_DIR/run"
readonly LOG_DIR="$STATE_DIR/log"
readonly MUNGE_DIR="$STATE_DIR/munge"    # owned by munge: munged runs unprivileged
readonly DB_DIR="$STATE_DIR/db"
readonly CTLD_SPOOL="$STATE_DIR/spool/slurmctld"
readonly SLURMD_SPOOL="$STATE_DIR/spool/slurmd"
readonly DB_SOCKET="$RUN_DIR/mariadbd.sock"

# Start order; stop goes in reverse.
readonly DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

log() { echo "dev-cluster: $*"; }
die() { echo "dev-cluster: error: $*" >&2; exit 1; }

pid_file() {
    case "$1" in
        munged) echo "$MUNGE_DIR/munged.pid" ;;
        *) echo "$RUN_DIR/$1.pid" ;;
    esac
}

log_file() {
    case "$1" in
        munged) echo "$MUNGE_DIR/munged.log" ;;
        *) echo "$LOG_DIR/$1.log" ;;
    esac
}

# Zombies count as gone: a stopped daemon may linger unreaped for a while.
pid_alive() {
    local pid="$1" stat state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    state="${stat##*) }"
    state="${state%% *}"
    [[ "$state" != Z && "$state" != X ]]
}

pid_gone() { ! pid_alive "$1"; }

# PID of a daemon we started, from its pidfile; fails if it is not running
# (or the PID was reused by another program).
daemon_pid() {
    local name="$1" pidfile pid comm
    pidfile="$(pid_file "$name")"
    [[ -r "$pidfile" ]] || return 1
    read -r pid <"$pidfile" || [[ -n "${pid:-}" ]] || return 1
    pid_alive "$pid" || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [[ "$comm" == "$name" ]] || return 1
    echo "$pid"
}

daemon_up() { daemon_pid "$1" >/dev/null; }

# PIDs of processes named $1 that are not the one in our pidfile.
foreign_pids() {
    local name="$1" ours pid
    ours="$(daemon_pid "$name" || true)"
    while read -r pid; do
        [[ "$pid" == "$ours" ]] || ! pid_alive "$pid" || echo "$pid"
    done < <(grep -lx "$name" /proc/[0-9]*/comm 2>/dev/null | cut -d/ -f3)
}

# wait_for SECONDS CMD...: poll CMD until it succeeds; fails on timeout.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

require_root() {
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "dev-cluster: error: must run as root (it installs packages and starts system daemons)" >&2
        exit 2
    fi
}

check_settings() {
    [[ "$STATE_DIR" == /* && "$STATE_DIR" != "/" ]] \
        || die "SYNTHGEN_SLURM_STATE must be an absolute path other than / (got '$STATE_DIR')"
    [[ "$TIMEOUT_S" =~ ^[0-9]+$ ]] \
        || die "SYNTHGEN_SLURM_TIMEOUT must be a number of seconds (got '$TIMEOUT_S')"
}

# ---------------------------------------------------------------- install

package_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

packages_missing() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        package_installed "$pkg" || echo "$pkg"
    done
}

apt_has_candidate() {
    local candidate
    candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [[ -n "$candidate" && "$candidate" != "(none)" ]]
}

install_packages() {
    local missing pkg need_update=0 created_policy=0
    mapfile -t missing < <(packages_missing)
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return 0
    fi
    for pkg in "${missing[@]}"; do
        apt_has_candidate "$pkg" || need_update=1
    done
    export DEBIAN_FRONTEND=noninteractive
    if ((need_update)); then
        log "apt-get update"
        apt-get update -qq
    fi
    # Keep package postinst scripts from starting the daemons.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    log "installing: ${missing[*]}"
    local rc=0
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null || rc=$?
    if ((rc != 0 && need_update == 0)); then
        # Stale package lists (404s): refresh once and retry.
        apt-get update -qq && rc=0
        ((rc != 0)) || apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null || rc=$?
    fi
    if ((created_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    ((rc == 0)) || die "apt-get install failed (exit $rc)"
    log "packages installed"
}

# ---------------------------------------------------------------- configs

node_hardware() {
    # slurmd -C prints e.g. "NodeName=x CPUs=8 Boards=1 ... RealMemory=32000".
    local line cpus mem
    line="$(slurmd -C 2>/dev/null | head -n 1)"
    cpus="$(grep -o 'CPUs=[0-9]*' <<<"$line" | cut -d= -f2)"
    mem="$(grep -o 'RealMemory=[0-9]*' <<<"$line" | cut -d= -f2)"
    [[ -n "$cpus" && -n "$mem" ]] || die "could not read CPUs/RealMemory from 'slurmd -C' (got: $line)"
    echo "$cpus $mem"
}

write_slurm_conf() {
    local hardware cpus mem
    hardware="$(node_hardware)"
    read -r cpus mem <<<"$hardware"
    mkdir -p "$SLURM_ETC"
    cat >"$SLURM_CONF" <<EOF
# Written by synthgen slurm/dev-cluster.sh; rewritten on every start.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE_NAME
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
TaskPlugin=task/none
ProctrackType=proctrack/cgroup
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
ReturnToService=2
KillWait=5
MinJobAge=3600
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$(log_file slurmctld)
SlurmdLogFile=$(log_file slurmd)
NodeName=$NODE_NAME NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE_NAME Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
    # Without this file slurmstepd aborts ("cgroup namespace 'freezer' not mounted").
    cat >"$CGROUP_CONF" <<EOF
# Written by synthgen slurm/dev-cluster.sh
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
}

write_slurmdbd_conf() {
    local password="$1"
    rm -f "$SLURMDBD_CONF"
    (
        umask 077
        cat >"$SLURMDBD_CONF" <<EOF
# Written by synthgen slurm/dev-cluster.sh; rewritten on every start.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$password
PidFile=$(pid_file slurmdbd)
LogFile=$(log_file slurmdbd)
EOF
    )
    chmod 600 "$SLURMDBD_CONF"
}

random_password() {
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# ---------------------------------------------------------------- start

# fail_start NAME WHY [LOGFILE]: report, stop whatever was started, exit 1.
fail_start() {
    local name="$1" why="$2" logfile="${3:-$(log_file "$1")}"
    echo "dev-cluster: error: $name $why; see $logfile" >&2
    stop_daemons >/dev/null 2>&1 || true
    exit 1
}

# wait_ready NAME CHECK...: wait for CHECK, failing fast if the daemon dies.
wait_ready() {
    local name="$1" deadline=$((SECONDS + TIMEOUT_S))
    shift
    until "$@"; do
        daemon_up "$name" || fail_start "$name" "exited during startup"
        ((SECONDS < deadline)) || fail_start "$name" "not ready after ${TIMEOUT_S}s"
        sleep 0.2
    done
}

prepare_state_dir() {
    rm -rf "$RUN_DIR" "$LOG_DIR" "$MUNGE_DIR" "$DB_DIR" "$STATE_DIR/spool"
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$DB_DIR" "$CTLD_SPOOL" "$SLURMD_SPOOL"
    chmod 755 "$STATE_DIR"
    install -d -m 700 -o munge -g munge "$MUNGE_DIR"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munged() {
    local dir
    for dir in /etc/munge /var/lib/munge /var/log/munge /run/munge; do
        mkdir -p "$dir"
        chown munge:munge "$dir"
    done
    chmod 700 /etc/munge /var/lib/munge
    chmod 755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    # munged insists on owning its log file.
    install -m 600 -o munge -g munge /dev/null "$(log_file munged)"
    setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --pid-file="$(pid_file munged)" --log-file="$(log_file munged)" \
        </dev/null >>"$(log_file munged)" 2>&1 || fail_start munged "failed to start"
    wait_for 10 daemon_up munged || fail_start munged "wrote no pidfile"
    wait_ready munged munge_works
}

readonly MARIADB_NOSYNC=(--innodb-flush-method=nosync --innodb-flush-log-at-trx-commit=2)

mariadb_sql() { mariadb --no-defaults --socket="$DB_SOCKET" -u root "$@"; }
mariadb_works() { mariadb_sql -e 'SELECT 1' >/dev/null 2>&1; }

start_mariadbd() {
    local password="$1"
    # The datadir is thrown away on every start, so skip fsync (install 4 s -> 0.5 s here).
    mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR" \
        --auth-root-authentication-method=socket --skip-test-db "${MARIADB_NOSYNC[@]}" \
        >"$LOG_DIR/mariadb-install-db.log" 2>&1 \
        || fail_start mariadb-install-db "failed" "$LOG_DIR/mariadb-install-db.log"
    # mariadbd does not fork: detach it into its own session.
    setsid mariadbd --no-defaults --user=root --datadir="$DB_DIR" --socket="$DB_SOCKET" \
        --pid-file="$(pid_file mariadbd)" --log-error="$(log_file mariadbd)" \
        --skip-networking --innodb-buffer-pool-size=512M --innodb-lock-wait-timeout=900 \
        "${MARIADB_NOSYNC[@]}" \
        </dev/null >>"$(log_file mariadbd)" 2>&1 &
    # Record the PID now (mariadbd rewrites the same one later) so a failed start can stop it.
    echo "$!" >"$(pid_file mariadbd)"
    wait_for 10 daemon_up mariadbd || fail_start mariadbd "failed to start"
    wait_ready mariadbd mariadb_works
    # Password goes through stdin, never the command line.
    mariadb_sql <<EOF || fail_start mariadbd "rejected the accounting database setup"
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

accounting_answers() { sacctmgr -n -P list cluster >/dev/null 2>&1; }
cluster_registered() { sacctmgr -n -P list cluster format=Cluster 2>/dev/null | grep -qx "$CLUSTER_NAME"; }

start_slurmdbd() {
    MYSQL_UNIX_PORT="$DB_SOCKET" slurmdbd </dev/null >>"$(log_file slurmdbd)" 2>&1 || fail_start slurmdbd "failed to start"
    wait_for 10 daemon_up slurmdbd || fail_start slurmdbd "wrote no pidfile"
    wait_ready slurmdbd accounting_answers
}

controller_answers() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
    slurmctld </dev/null >>"$(log_file slurmctld)" 2>&1 || fail_start slurmctld "failed to start"
    wait_for 10 daemon_up slurmctld || fail_start slurmctld "wrote no pidfile"
    wait_ready slurmctld controller_answers
    wait_ready slurmctld cluster_registered
}

node_state() { sinfo -h -n "$NODE_NAME" -o %T 2>/dev/null | head -n 1; }
node_idle() { [[ "$(node_state)" == idle ]]; }
node_healthy() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing)$ ]]; }

start_slurmd() {
    slurmd -N "$NODE_NAME" </dev/null >>"$(log_file slurmd)" 2>&1 || fail_start slurmd "failed to start"
    wait_for 10 daemon_up slurmd || fail_start slurmd "wrote no pidfile"
    wait_ready slurmd node_idle
}

all_daemons_up() {
    local name
    for name in "${DAEMONS[@]}"; do
        daemon_up "$name" || return 1
    done
}

cluster_healthy() {
    all_daemons_up && munge_works && accounting_answers && node_healthy
}

any_daemon_up() {
    local name
    for name in "${DAEMONS[@]}"; do
        ! daemon_up "$name" || return 0
    done
    return 1
}

check_no_foreign_daemons() {
    local name pids
    for name in "${DAEMONS[@]}"; do
        pids="$(foreign_pids "$name" | tr '\n' ' ')"
        [[ -z "$pids" ]] \
            || die "$name is already running (pid ${pids% }) but was not started by this script; stop it first"
    done
}

port_listening() {
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v hex="$hex" '$4 == "0A" && $2 ~ (":" hex "$") {found = 1} END {exit !found}' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

check_ports_free() {
    local port name
    for port in 6817:slurmctld 6818:slurmd 6819:slurmdbd; do
        name="${port#*:}"
        port="${port%%:*}"
        ! port_listening "$port" || die "TCP port $port (needed by $name) is already in use by another program"
    done
}

start_cluster() {
    local t0="$EPOCHREALTIME" password
    if cluster_healthy; then
        log "already running and healthy (state dir $STATE_DIR)"
        return 0
    fi
    [[ -z "$(packages_missing)" ]] || install_packages
    if any_daemon_up; then
        log "cluster is partly up; stopping it before a clean start"
        stop_cluster
    fi
    check_no_foreign_daemons
    check_ports_free
    prepare_state_dir
    write_slurm_conf
    password="$(random_password)"
    write_slurmdbd_conf "$password"
    start_munged
    start_mariadbd "$password"
    unset password
    start_slurmdbd
    start_slurmctld
    start_slurmd
    log "cluster $CLUSTER_NAME up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')s (state dir $STATE_DIR)"
}

# ---------------------------------------------------------------- stop

step_sockets_left() { compgen -G "$SLURMD_SPOOL/${NODE_NAME}_*" >/dev/null; }
no_step_sockets() { ! step_sockets_left; }
queue_empty() { [[ -z "$(squeue -h -o %i 2>/dev/null)" ]]; }

cancel_jobs() {
    local jobs
    if daemon_up slurmctld && controller_answers; then
        jobs="$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
        if [[ -n "${jobs// /}" ]]; then
            log "cancelling jobs: ${jobs% }"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 30 queue_empty || log "warning: jobs still in the queue after 30s"
        fi
    fi
    # Step processes can outlive an empty queue; their sockets go away when they end.
    if daemon_up slurmd; then
        wait_for 30 no_step_sockets || log "warning: job steps still running after 30s"
    fi
}

stop_daemon() {
    local name="$1" pid
    pid="$(daemon_pid "$name")" || { rm -f "$(pid_file "$name")"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 30 pid_gone "$pid"; then
        log "warning: $name (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 10 pid_gone "$pid" || die "$name (pid $pid) does not exit"
    fi
    rm -f "$(pid_file "$name")"
    log "stopped $name (pid $pid)"
}

stop_daemons() {
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop_daemon "${DAEMONS[i]}"
    done
}

stop_cluster() {
    if ! any_daemon_up; then
        log "already stopped"
        return 0
    fi
    cancel_jobs
    stop_daemons
}

# ---------------------------------------------------------------- status

status_cluster() {
    local name pid rc=0
    for name in "${DAEMONS[@]}"; do
        if pid="$(daemon_pid "$name")"; then
            printf '%-10s up (pid %s)\n' "$name" "$pid"
        else
            printf '%-10s down\n' "$name"
            rc=1
        fi
    done
    if daemon_up slurmctld; then
        sinfo 2>&1 || rc=1
    fi
    return "$rc"
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        install | start | stop | status) ;;
        *)
            echo "usage: $0 install|start|stop|status" >&2
            exit 2
            ;;
    esac
    require_root
    check_settings
    case "$cmd" in
        install) install_packages ;;
        start) start_cluster ;;
        stop) stop_cluster ;;
        status) status_cluster ;;
    esac
}

main "$@"
