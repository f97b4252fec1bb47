#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (CPU only, no accounting DB)
# for the `--executor slurm` integration test. Run as root after
# `apt-get install slurm-wlm munge`. Idempotent: a second run finds the daemons
# up and the node idle and only re-checks.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
HOST="$(hostname -s)"
CPUS="$(nproc)"
# Advertise a little less memory than is free, so slurmd never finds less than configured.
FREE_MB="$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)"
REAL_MB=$(( FREE_MB * 9 / 10 ))

log() { echo "slurm_setup: $*" >&2; }

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.2
    done
    log "munged did not start"; exit 1
}

write_conf() {
    mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    local tmp="$CONF.tmp"
    cat >"$tmp" <<EOF
# Written by .ci/slurm_setup.sh: one CPU node on localhost, no accounting DB.
ClusterName=mslesseg
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=300
MinJobAge=600
KillWait=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$tmp" "$CONF"
}

node_state() {
    sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1
}

start_daemons() {
    if ! scontrol ping 2>/dev/null | grep -q 'UP'; then
        /usr/sbin/slurmctld
    fi
    if ! pgrep -x slurmd >/dev/null; then
        /usr/sbin/slurmd
    fi
}

wait_idle() {
    local state=""
    for _ in $(seq 120); do
        state="$(node_state || true)"
        case "$state" in
            idle|mixed|allocated) log "node $HOST is $state"; return ;;
            down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    log "node $HOST did not become idle (state: ${state:-unknown})"
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
}

start_munge
if [ "$(node_state || true)" != "idle" ] && [ "$(node_state || true)" != "mixed" ]; then
    [ -f "$CONF" ] && grep -q 'slurm_setup.sh' "$CONF" || write_conf
    start_daemons
fi
wait_idle
