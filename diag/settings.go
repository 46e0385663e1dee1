package diag

// Linux sysctls the findings name, as Snapshot.Settings keys of a host
// snapshot.
const (
	SysctlFinTimeout      = "net.ipv4.tcp_fin_timeout"
	SysctlTWReuse         = "net.ipv4.tcp_tw_reuse"
	SysctlPortRange       = "net.ipv4.ip_local_port_range"
	SysctlMaxSynBacklog   = "net.ipv4.tcp_max_syn_backlog"
	SysctlSomaxconn       = "net.core.somaxconn"
	SysctlSyncookies      = "net.ipv4.tcp_syncookies"
	SysctlMaxOrphans      = "net.ipv4.tcp_max_orphans"
	SysctlMaxTWBuckets    = "net.ipv4.tcp_max_tw_buckets"
	SysctlSynAckRetries   = "net.ipv4.tcp_synack_retries"
	SysctlOrphanRetries   = "net.ipv4.tcp_orphan_retries"
	SysctlRetries2        = "net.ipv4.tcp_retries2"
	SysctlMTUProbing      = "net.ipv4.tcp_mtu_probing"
	SysctlKeepaliveTime   = "net.ipv4.tcp_keepalive_time"
	SysctlAbortOnOverflow = "net.ipv4.tcp_abort_on_overflow"
)

// Sysctls lists the sysctls a host source should read into
// Snapshot.Settings.
func Sysctls() []string {
	return []string{
		SysctlFinTimeout, SysctlTWReuse, SysctlPortRange, SysctlMaxSynBacklog,
		SysctlSomaxconn, SysctlSyncookies, SysctlMaxOrphans, SysctlMaxTWBuckets,
		SysctlSynAckRetries, SysctlOrphanRetries, SysctlRetries2, SysctlMTUProbing,
		SysctlKeepaliveTime, SysctlAbortOnOverflow,
	}
}

// synack's knobs, as Snapshot.Settings keys of a synack snapshot. Values
// are written as Go writes them (durations "30s", booleans "true").
const (
	KnobMSL             = "MSL"             // TIME-WAIT lasts 2*MSL
	KnobFinWait2Timeout = "FinWait2Timeout" // closes orphaned FIN-WAIT-2
	KnobSynBacklog      = "SynBacklog"      // half-open handshakes per listener
	KnobAcceptBacklog   = "AcceptBacklog"   // completed handshakes waiting for Accept
	KnobSynAckRetries   = "SynAckRetries"   // SYN,ACK retransmissions before giving up
	KnobSyncookies      = "Syncookies"      // answer with SYN cookies when the SYN backlog is full
	KnobMaxRetransmits  = "MaxRetransmits"  // retransmissions before ETIMEDOUT
	KnobUserTimeout     = "UserTimeout"     // RFC 9293 USER TIMEOUT
	KnobEphemeralPorts  = "EphemeralPorts"  // "lo-hi"
	KnobMemoryLimit     = "MemoryLimit"     // the stack's memory budget, bytes; 0 unlimited
)

// Setting returns a setting's value, "" if the snapshot does not have it.
func (s *Snapshot) Setting(name string) string { return s.Settings[name] }
