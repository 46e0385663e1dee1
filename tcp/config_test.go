package tcp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// Every default documented on a Config field, read through its accessor
// from a zero Config (and from a negative value, which also means the
// default); a value that is set is kept. The wants are the numbers the
// field comments name, written out rather than taken from the constants.
func TestConfigDefaults(t *testing.T) {
	type acc struct {
		name string
		get  func(*Config) any
		set  func(*Config)
		def  any
		kept any
	}
	tests := []acc{
		{"SendBufferSize", func(c *Config) any { return c.sendBufferSize() }, func(c *Config) { c.SendBufferSize = 4096 }, 1 << 20, 4096},
		{"ReceiveBufferSize", func(c *Config) any { return c.receiveBufferSize() }, func(c *Config) { c.ReceiveBufferSize = 4096 }, 1 << 20, 4096},
		// A 1 MiB window of 1460-byte segments: the bytes, and 64 bytes for
		// each of the 719 segments and for 64 more pieces (oooExtraChunks).
		{"OutOfOrderLimit", func(c *Config) any { return c.outOfOrderLimit(1<<20, 1460) }, func(c *Config) { c.OutOfOrderLimit = 4096 }, 1<<20 + (719+64)*64, 4096},
		{"OutOfOrderLimit small window", func(c *Config) any { return c.outOfOrderLimit(1000, 1460) }, func(c *Config) { c.OutOfOrderLimit = 4096 }, 64 << 10, 4096},
		{"OrphanRetries", func(c *Config) any { return c.orphanRetries() }, func(c *Config) { c.OrphanRetries = 2 }, 8, 2},
		{"MSL", func(c *Config) any { return c.msl() }, func(c *Config) { c.MSL = time.Second }, 30 * time.Second, time.Second},
		{"InitialRTO", func(c *Config) any { return c.initialRTO() }, func(c *Config) { c.InitialRTO = 3 * time.Second }, time.Second, 3 * time.Second},
		{"MinRTO", func(c *Config) any { return c.minRTO() }, func(c *Config) { c.MinRTO = time.Second }, 200 * time.Millisecond, time.Second},
		{"MaxRTO", func(c *Config) any { return c.maxRTO() }, func(c *Config) { c.MaxRTO = time.Minute }, 120 * time.Second, time.Minute},
		{"MaxRetransmits", func(c *Config) any { return c.maxRetransmits() }, func(c *Config) { c.MaxRetransmits = 3 }, 15, 3},
		{"SynRetries", func(c *Config) any { return c.synRetries() }, func(c *Config) { c.SynRetries = 2 }, 6, 2},
		{"SynAckRetries", func(c *Config) any { return c.synAckRetries() }, func(c *Config) { c.SynAckRetries = 2 }, 5, 2},
		{"DelayedACK", func(c *Config) any { return c.delayedACK() }, func(c *Config) { c.DelayedACK = 200 * time.Millisecond }, 40 * time.Millisecond, 200 * time.Millisecond},
		{"QuickACKs", func(c *Config) any { return c.quickACKs() }, func(c *Config) { c.QuickACKs = 4 }, 16, 4},
		{"ChallengeACKLimit", func(c *Config) any { return c.challengeACKLimit() }, func(c *Config) { c.ChallengeACKLimit = 1000 }, 100, 1000},
		{"InvalidACKInterval", func(c *Config) any { return c.invalidACKInterval() }, func(c *Config) { c.InvalidACKInterval = time.Second }, 500 * time.Millisecond, time.Second},
		{"KeepAliveIdle", func(c *Config) any { return c.keepAliveIdle() }, func(c *Config) { c.KeepAliveIdle = time.Minute }, 2 * time.Hour, time.Minute},
		{"KeepAliveInterval", func(c *Config) any { return c.keepAliveInterval() }, func(c *Config) { c.KeepAliveInterval = time.Second }, 75 * time.Second, time.Second},
		{"KeepAliveCount", func(c *Config) any { return c.keepAliveCount() }, func(c *Config) { c.KeepAliveCount = 3 }, 9, 3},
		{"FinWait2Timeout", func(c *Config) any { return c.finWait2Timeout() }, func(c *Config) { c.FinWait2Timeout = time.Second }, 60 * time.Second, time.Second},
		{"MinPMTU", func(c *Config) any { return c.minPMTU() }, func(c *Config) { c.MinPMTU = 1000 }, 552, 1000},
		{"MSS IPv4", func(c *Config) any { return c.mss(netip.MustParseAddr("198.18.0.1")) }, func(c *Config) { c.MSS = 1000 }, uint16(1460), uint16(1000)},
		{"MSS IPv4-mapped", func(c *Config) any { return c.mss(netip.MustParseAddr("::ffff:198.18.0.1")) }, func(c *Config) { c.MSS = 1000 }, uint16(1460), uint16(1000)},
		{"MSS IPv6", func(c *Config) any { return c.mss(netip.MustParseAddr("2001:db8::1")) }, func(c *Config) { c.MSS = 1000 }, uint16(1440), uint16(1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var zero Config
			if got := tt.get(&zero); got != tt.def {
				t.Errorf("zero Config: got %v, want the documented default %v", got, tt.def)
			}
			var set Config
			tt.set(&set)
			if got := tt.get(&set); got != tt.kept {
				t.Errorf("set to %v: got %v", tt.kept, got)
			}
			// WithDefaults writes out what the accessor answers and keeps
			// what is set.
			if tt.name[:3] != "MSS" {
				d := zero.WithDefaults()
				if got := tt.get(&d); got != tt.def {
					t.Errorf("WithDefaults of a zero Config: got %v, want %v", got, tt.def)
				}
				d = set.WithDefaults()
				if got := tt.get(&d); got != tt.kept {
					t.Errorf("WithDefaults of a set Config: got %v, want %v", got, tt.kept)
				}
			}
		})
	}

	// Negative numbers mean the default too.
	neg := Config{SendBufferSize: -1, MSL: -time.Second, MaxRetransmits: -1, KeepAliveCount: -2}
	if neg.sendBufferSize() != 1<<20 || neg.msl() != 30*time.Second || neg.maxRetransmits() != 15 || neg.keepAliveCount() != 9 {
		t.Errorf("negative fields: %d %v %d %d, want the defaults", neg.sendBufferSize(), neg.msl(), neg.maxRetransmits(), neg.keepAliveCount())
	}

	// The zero Config's congestion controller is CUBIC (issue 11), its
	// ISN source the all-zero-key generator.
	var zero Config
	if _, ok := zero.newCongestion(1000).(*cubic); !ok {
		t.Errorf("zero Config: congestion controller %T, want CUBIC", zero.newCongestion(1000))
	}
	id := Tuple{Local: localAP, Remote: remoteAP}
	want := NewISNGenerator([32]byte{})
	if got := zero.isn(); got.ISN(id, epoch) != want.ISN(id, epoch) || got.TimestampOffset(id) != want.TimestampOffset(id) {
		t.Errorf("zero Config: ISN source %T does not answer as the all-zero-key generator", got)
	}

	// Nagle is off unless asked for, as Go's net package has it.
	if c := NewConn(&zero, id, nil); !c.nodelay {
		t.Errorf("zero Config: Nagle on, want off")
	}
	if c := NewConn(&Config{Nagle: true}, id, nil); c.nodelay {
		t.Errorf("Config.Nagle: Nagle off, want on")
	}
}

// A zero Config works as it is, with nothing filled in first: a connection
// and a listener's handshake both run on the defaults.
func TestZeroConfigConn(t *testing.T) {
	var cfg Config
	id := Tuple{Local: localAP, Remote: remoteAP}
	gen := NewISNGenerator([32]byte{}) // the documented ISN default
	tc := &tconn{t: t, now: epoch, peerWin: 8192}
	tc.c = NewConn(&cfg, id, tc)
	if err := tc.c.Connect(tc.now); err != nil {
		t.Fatal(err)
	}
	syn := tc.want("SYN on defaults", seg{flags: S, seq: gen.ISN(id, epoch), win: 0xFFFF})
	if o := syn.Options; !o.HasMSS || o.MSS != 1460 || !o.HasWindowScale || o.WindowScale != 5 || !o.SACKPermitted || !o.HasTimestamps {
		t.Errorf("SYN options %+v: want MSS 1460, window scale 5 (1 MiB buffer), SACK-permitted and timestamps", o)
	}
	// RFC 7323 section 5.4: TSval is the shared millisecond clock plus the
	// ISN source's per-4-tuple offset.
	if want := uint32(epoch.Sub(tsClockEpoch)/time.Millisecond) + gen.TimestampOffset(id); syn.Options.TSVal != want {
		t.Errorf("SYN TSval %d, want %d (clock plus the generator's offset)", syn.Options.TSVal, want)
	}
	if d := tc.c.Deadline().Sub(tc.now); d != time.Second {
		t.Errorf("SYN retransmission due after %v, want the initial RTO of 1 s", d)
	}
	if !reflect.DeepEqual(cfg, Config{}) {
		t.Errorf("NewConn changed the Config: %+v", cfg)
	}

	h := NewHandshake(&cfg, id, &Segment{Seq: irs, Flags: S, Window: 1000}, epoch)
	sa := h.SynAck(&cfg, id, epoch)
	if sa.Window != 0xFFFF || sa.Options.MSS != 1460 {
		t.Errorf("SYN,ACK on defaults: window %d MSS %d, want 65535 and 1460", sa.Window, sa.Options.MSS)
	}
	h.Retransmits = 5
	if at, more := h.RetransmitAt(&cfg, epoch); more || at.Sub(epoch) != 32*time.Second {
		t.Errorf("after 5 SYN,ACK retransmissions: due in %v, more %v; want 32 s and no more (SynAckRetries 5)", at.Sub(epoch), more)
	}
}
