#!/usr/bin/env bash
# Single-node Slurm 22.05 (Debian 12) for CI, without systemd. Run as root.
# WITH_DBD=1 additionally starts MariaDB + slurmdbd so that `sacct` works.
set -euo pipefail
WITH_DBD=${WITH_DBD:-0}
export DEBIAN_FRONTEND=noninteractive
pkgs="slurmctld slurmd slurm-client munge"
[ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
pkg_install() { apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "$@"; }
# a fresh machine may have no package lists yet: fetch them only when the first try fails
pkg_install $pkgs >/dev/null 2>&1 || { apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null; pkg_install $pkgs >/dev/null; }

# --- munge (package postinst already created /etc/munge/munge.key) ---
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged          # daemonizes, pid in /run/munge/munged.pid
for i in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done

# --- slurm.conf ---
NCPU=${SLURM_CPUS:-8}     # may exceed real cores thanks to SlurmdParameters=config_overrides
if [ "$WITH_DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/linux
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MaxArraySize=1001
MaxJobCount=100000
# (every element of a pending array counts; the default 10000 is reached when one 10,000-task run follows another within MinJobAge)
MinJobAge=300
KillWait=5
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# --- optional accounting: MariaDB + slurmdbd ---
if [ "$WITH_DBD" = 1 ]; then
  install -d -o mysql -g root -m 0755 /run/mysqld
  nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
        --pid-file=/run/mysqld/mysqld.pid >/var/log/slurm/mariadb.log 2>&1 &
  for i in $(seq 100); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.2; done
  mysql -uroot <<'EOF'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
  cat > /etc/slurm/slurmdbd.conf <<'EOF'
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpass
StorageLoc=slurm_acct_db
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
  slurmdbd                                       # daemonizes
  for i in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
fi

slurmctld                                        # daemonizes
slurmd -N localhost                              # -N: node name is "localhost", not $(hostname)
# readiness: controller answers and node is idle
for i in $(seq 150); do
  [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ] && break; sleep 0.2
done
sinfo -h -N -o '%N %T' | grep -q idle || { tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; exit 1; }
echo "slurm ready"
