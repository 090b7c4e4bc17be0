#!/usr/bin/env bash
# Son of Grid Engine 8.1.9 (Debian 12) single host, no systemd. Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
H=$(hostname)                       # SGE host name used everywhere below
SLOTS=${SGE_SLOTS:-8}
for p in gridengine-common gridengine-master gridengine-exec gridengine-client; do
  cat <<EOF
$p shared/gridengineconfig boolean true
$p shared/gridenginecell string default
$p shared/gridenginemaster string $H
EOF
done | debconf-set-selections
# postinst runs init_cluster (spool + global config); policy-rc.d / no runlevel => daemons not auto-started
pkgs="gridengine-master gridengine-exec gridengine-client"
pkg_install() { apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "$@"; }
# a fresh machine may have no package lists yet: fetch them only when the first try fails
pkg_install $pkgs >/dev/null 2>&1 || { apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null; pkg_install $pkgs >/dev/null; }

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
# GOTCHA 1: $H resolves to 127.0.0.1 whose reverse name is "localhost" -> commlib "access denied
# (client IP resolved to host name localhost. This is not identical to clients host name vm)".
# Fix without touching /etc/hosts: declare the names as aliases of one host.
[ "$H" = localhost ] || echo "$H localhost" > $SGE_ROOT/$SGE_CELL/common/host_aliases
echo "$H" > $SGE_ROOT/$SGE_CELL/common/act_qmaster
install -d -o sgeadmin -g sgeadmin -m 0755 /run/gridengine

qstat >/dev/null 2>&1 || /usr/sbin/sge_qmaster       # daemonizes; pid in /var/spool/gridengine/qmaster/qmaster.pid
for i in $(seq 100); do qstat >/dev/null 2>&1 && break; sleep 0.2; done

W=$(mktemp -d)
# GOTCHA 2: default min_uid/min_gid=1000 rejects root's jobs. Also faster load reports, no mail.
# -Mconf takes a FILE NAMED AFTER THE CONFIG ("global"), not an arbitrary file name.
qconf -sconf global | sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
   -e 's/^load_report_time .*/load_report_time 00:00:05/' -e 's|^mailer .*|mailer /bin/true|' > $W/global
(cd $W && qconf -Mconf global >/dev/null 2>&1)
# GOTCHA 3: default schedule_interval is 15 s -> jobs wait up to 15 s. Use 1 s + flush on submit/finish.
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
   -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
   -e 's/^job_load_adjustments .*/job_load_adjustments NONE/' \
   -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time 0:0:0/' > $W/sched
qconf -Msconf $W/sched >/dev/null 2>&1
qconf -as "$H" >/dev/null 2>&1 || true                             # submit host (admin host is set by init_cluster)
cat > $W/exechost <<EOF
hostname $H
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
EOF
qconf -Ae $W/exechost >/dev/null 2>&1 || true   # "already exists" on re-run
cat > $W/queue <<EOF
qname all.q
hostlist $H
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list smp
rerun FALSE
slots $SLOTS
tmpdir /tmp
shell /bin/sh
prolog NONE
epilog NONE
shell_start_mode posix_compliant
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
EOF
# a parallel environment for multi-core tasks and pilots (qsub -pe smp N): all slots on one host
cat > $W/pe <<PE
pe_name smp
slots 9999
user_lists NONE
xuser_lists NONE
start_proc_args /bin/true
stop_proc_args /bin/true
allocation_rule \$pe_slots
control_slaves FALSE
job_is_first_task TRUE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
PE
qconf -Ap $W/pe >/dev/null 2>&1 || qconf -Mp $W/pe >/dev/null
qconf -Aq $W/queue >/dev/null 2>&1 || qconf -Mq $W/queue >/dev/null
rm -rf $W

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive /var/spool/gridengine/execd/*/execd.pid || /usr/sbin/sge_execd         # daemonizes; pid in /var/spool/gridengine/execd/<name>/execd.pid
# readiness: queue instance has a load value (execd reported) and no error/alarm state
for i in $(seq 150); do
  line=$(qstat -f -q all.q 2>/dev/null | grep "^all.q@" || true)
  [ -n "$line" ] && ! echo "$line" | grep -q -- '-NA-' && [ "$(echo "$line" | awk '{print NF}')" -eq 5 ] && break
  sleep 0.2
done
qstat -f
echo "sge ready"
