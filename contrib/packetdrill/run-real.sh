#!/bin/sh
# run-real.sh: run the real packetdrill binary against synack built as a
# shared object (--so_filename).
#
#   contrib/packetdrill/run-real.sh [-v] [-k] PACKETDRILL_CHECKOUT SCRIPT_OR_DIR...
#
# PACKETDRILL_CHECKOUT is a checkout of github.com/google/packetdrill (this
# script never downloads anything). It builds packetdrill there if
# gtests/net/packetdrill/packetdrill is missing (./configure && make; needs
# gcc, bison, flex), builds ./contrib/packetdrill with
# `go build -buildmode=c-shared`, then runs every script given (a directory
# means every *.pkt below it) and prints PASS/FAIL per script and the counts.
#
#   -v   print packetdrill's full output for failures
#   -k   keep the work directory (the .so, per-script logs)
#   -r   relaxed run, for diagnosis: in a copy of each script, the option
#        list of every expected SYN and SYN,ACK (`> S ...<...>`) becomes
#        `<...>` (not checked). synack lays out its SYN options differently
#        from FreeBSD and packetdrill compares them byte for byte; this shows
#        how the rest of each script fares. Likewise FreeBSD's SO_RCVBUF after
#        the handshake, the buffer rounded up to a multiple of the MSS
#        (getsockopt ... [65700] / [66240]), is read as the recvspace value
#        ([65536]): synack does not resize its buffer. Counts from -r are
#        not a pass of the suite as written.
#
# Scripts are copied and run through a small preprocessor first: the
# suite's `#ifdef STANDARD` / `#ifdef FreeBSD` / `#endif` blocks (which
# google/packetdrill cannot parse) keep the STANDARD branch, the RFC
# behaviour (DEFINE=FreeBSD keeps the other).
#
# Environment: SO_FLAGS (extra --so_flags, comma separated), PD_ARGS (extra
# packetdrill arguments), TIMEOUT (seconds per script, default 30).
#
# FreeBSD scripts run `sysctl -w net.inet.tcp....` in backticks, Linux
# ones `sysctl -q net.ipv4....` and `../common/defaults.sh` (stubbed too). They are not
# run on this host: a stub `sysctl` first on PATH records the assignments in
# a file, and the object reads that file when the script makes its first
# socket (--so_flags sysctl_file=...), mapping the ones synack has a knob for
# (see README.md). Likewise a stub `sockstat` lists synack's connections from
# a table the object keeps (--so_flags sockstat_file=...), for the suite's
# `sockstat ... | grep -c STATE` checks. Every other backtick command runs as
# packetdrill runs it.
set -eu

verbose=0 keep=0 relax=0
while [ $# -gt 0 ]; do
	case "$1" in
	-v) verbose=1; shift ;;
	-k) keep=1; shift ;;
	-r) relax=1; shift ;;
	*) break ;;
	esac
done
if [ $# -lt 2 ]; then
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
pdroot=$1; shift
pddir=$pdroot/gtests/net/packetdrill
here=$(cd "$(dirname "$0")" && pwd)
module=$(cd "$here/../.." && pwd)
[ -d "$pddir" ] || { echo "run-real.sh: $pddir: no packetdrill checkout" >&2; exit 2; }

if [ ! -x "$pddir/packetdrill" ]; then
	echo "building packetdrill in $pddir" >&2
	(cd "$pddir" && ./configure >/dev/null && make -j"$(nproc)" packetdrill >/dev/null) ||
		{ echo "run-real.sh: packetdrill build failed (needs gcc, bison, flex)" >&2; exit 2; }
fi
pd=$pddir/packetdrill

work=$(mktemp -d "${TMPDIR:-/tmp}/synack-pd.XXXXXX")
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
so=$work/synack.so
(cd "$module" && go build -buildvcs=false -buildmode=c-shared -o "$so" ./contrib/packetdrill)

mkdir "$work/bin"
cat >"$work/bin/sysctl" <<'EOF'
#!/bin/sh
# Stub: record sysctl assignments for synack.so instead of running them.
for a in "$@"; do
	case "$a" in
	-*) ;;
	*=*) echo "$a" >>"${SYNACK_SYSCTL_FILE:-/dev/null}" ;;
	*) echo "$a: 0" ;;
	esac
done
exit 0
EOF
chmod +x "$work/bin/sysctl"
cat >"$work/bin/sockstat" <<'EOF'
#!/bin/sh
# Stub for FreeBSD's sockstat: lists synack's connections from the table
# synack.so keeps in $SYNACK_SOCKSTAT_FILE (sockstat_file=), in sockstat's
# columns (USER COMMAND PID FD PROTO LOCAL FOREIGN STATE). Understands -4,
# -6, -p PORT; -P tcp and -s are what it does anyway. Connections closed by
# their owner are listed without one (?), as sockstat lists them.
fam= port=
while [ $# -gt 0 ]; do
	case "$1" in
	-4) fam=tcp4 ;;
	-6) fam=tcp6 ;;
	-p) shift; port=$1 ;;
	-P) shift ;;
	esac
	shift
done
echo "USER     COMMAND    PID   FD PROTO  LOCAL ADDRESS         FOREIGN ADDRESS       STATE"
[ -f "${SYNACK_SOCKSTAT_FILE:-}" ] || exit 0
awk -v fam="$fam" -v port="$port" '
function portof(a) { sub(/.*:/, "", a); return a }
(fam == "" || $1 == fam) && (port == "" || portof($2) == port || portof($3) == port) {
	if ($5 == "owned") printf "root     packetdril 1     3  %-6s %-21s %-21s %s\n", $1, $2, $3, $4
	else printf "?        ?          ?     ?  %-6s %-21s %-21s %s\n", $1, $2, $3, $4
}' "$SYNACK_SOCKSTAT_FILE"
EOF
chmod +x "$work/bin/sockstat"

# Linux-written scripts (google/packetdrill gtests/net/tcp) start with
# `../common/defaults.sh` (or ../../ or ../../../, by their depth), some
# with `../common/set_sysctls.py /proc/sys/net/ipv4/X=V`. Each script runs
# in $work/d/d/d/s.N, so all three depths resolve to stubs below $work that
# record Linux's defaults (as the object's sysctl table knows them,
# internal/pktdrill/sock.LinuxDefaults) and the assignments, like the stub
# sysctl; nothing is set on this host.
for c in "$work/d/d/d/common" "$work/d/d/common" "$work/d/common"; do
	mkdir -p "$c"
	cat >"$c/defaults.sh" <<'EOF'
#!/bin/sh
# Stub for packetdrill's gtests/net/common/defaults.sh: Linux's defaults,
# recorded for synack.so instead of set on this host.
sysctl -q net.ipv4.tcp_rmem="4096 540000 15728640" net.ipv4.tcp_wmem="4096 262144 4194304" \
	net.ipv4.tcp_timestamps=1 net.ipv4.tcp_sack=1 net.ipv4.tcp_syn_retries=5 \
	net.ipv4.tcp_synack_retries=5 net.ipv4.tcp_ecn=0
EOF
	chmod +x "$c/defaults.sh"
	cat >"$c/set_sysctls.py" <<'EOF'
#!/bin/sh
# Stub for packetdrill's set_sysctls.py: /proc/sys/net/ipv4/X=V is recorded
# as net.ipv4.X=V for synack.so, never written to this host's /proc.
for a in "$@"; do
	case "$a" in
	/proc/sys/*=*) n=${a%%=*}; n=${n#/proc/sys/}; echo "$(echo "$n" | tr / .)=${a#*=}" >>"${SYNACK_SYSCTL_FILE:-/dev/null}" ;;
	esac
done
exit 0
EOF
	chmod +x "$c/set_sysctls.py"
done

list=$work/scripts
: >"$list"
for a in "$@"; do
	if [ -d "$a" ]; then
		find "$a" -name '*.pkt' | sort >>"$list"
	else
		echo "$a" >>"$list"
	fi
done

pass=0 fail=0 n=0
while IFS= read -r f; do
	n=$((n + 1))
	base=$(basename "$f")
	dir=$work/d/d/d/s.$n
	mkdir -p "$dir"
	awk -v def="${DEFINE:-STANDARD}" -v relax="$relax" '
	/^#ifdef[ \t]/ { skip = ($2 != def); next }
	/^#else/ { skip = !skip; next }
	/^#endif/ { skip = 0; next }
	skip { next }
	relax && /^[ \t]*[-+0-9.*]+[ \t]+>[ \t]+S/ { sub(/<[^<>]*>[ \t]*$/, "<...>") }
	relax && /SO_RCVBUF, \[(65700|66240)\]/ { sub(/\[(65700|66240)\]/, "[65536]") }
	{ print }' "$f" >"$dir/$base"
	# packetdrill's addresses must be the object's: pick the family the
	# script's header asks for.
	if grep -q -- '--ip_version=ipv6' "$f"; then
		local_ip=fd3d:fa7b:d17d::1
	else
		local_ip=192.168.0.1
	fi
	sysctls=$work/sysctl.$n sockstat=$work/sockstat.$n
	: >"$sysctls"
	flags="sysctl_file=$sysctls,sockstat_file=$sockstat${SO_FLAGS:+,$SO_FLAGS}"
	log=$work/log.$n
	# shellcheck disable=SC2086
	if (cd "$dir" && PATH="$work/bin:$PATH" SYNACK_SYSCTL_FILE="$sysctls" SYNACK_SOCKSTAT_FILE="$sockstat" \
		timeout "${TIMEOUT:-30}" "$pd" --so_filename="$so" --so_flags="$flags" \
		--local_ip="$local_ip" ${PD_ARGS:-} "$base") >"$log" 2>&1; then
		pass=$((pass + 1))
		echo "PASS $f"
	else
		rc=$?
		fail=$((fail + 1))
		[ "$rc" = 124 ] && echo "timeout after ${TIMEOUT:-30}s" >>"$log"
		if [ "$verbose" = 1 ]; then
			echo "FAIL $f"
			sed 's/^/    /' "$log"
		else
			# The first line naming the script is packetdrill's error.
			why=$(grep -m 1 -F "$base:" "$log" || grep -v '^synack.so:' "$log" | head -n 1)
			echo "FAIL $f: $(echo "$why" | cut -c1-240)"
		fi
	fi
done <"$list"
echo "total $n: $pass pass, $fail fail"
[ "$keep" = 1 ] && echo "work directory: $work"
[ "$fail" = 0 ]
