package pcap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
)

type record struct {
	t          time.Time
	incl, orig int
	data       []byte
}

// readPcap is an independent little reader of what Writer writes.
func readPcap(t *testing.T, r io.Reader) []record {
	t.Helper()
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("file header: %v", err)
	}
	le := binary.LittleEndian
	for _, f := range []struct {
		name      string
		got, want uint32
	}{
		{"magic", le.Uint32(h[0:]), 0xa1b2c3d4},
		{"major", uint32(le.Uint16(h[4:])), 2},
		{"minor", uint32(le.Uint16(h[6:])), 4},
		{"thiszone", le.Uint32(h[8:]), 0},
		{"sigfigs", le.Uint32(h[12:]), 0},
		{"snaplen", le.Uint32(h[16:]), 65535},
		{"linktype", le.Uint32(h[20:]), 101},
	} {
		if f.got != f.want {
			t.Errorf("header %s = %#x, want %#x", f.name, f.got, f.want)
		}
	}
	var recs []record
	for {
		var rh [16]byte
		if _, err := io.ReadFull(r, rh[:]); err == io.EOF {
			return recs
		} else if err != nil {
			t.Fatalf("record %d header: %v", len(recs), err)
		}
		rec := record{
			t:    time.Unix(int64(le.Uint32(rh[0:])), int64(le.Uint32(rh[4:]))*1000),
			incl: int(le.Uint32(rh[8:])),
			orig: int(le.Uint32(rh[12:])),
		}
		if le.Uint32(rh[4:]) >= 1e6 {
			t.Errorf("record %d: microseconds %d out of range", len(recs), le.Uint32(rh[4:]))
		}
		rec.data = make([]byte, rec.incl)
		if _, err := io.ReadFull(r, rec.data); err != nil {
			t.Fatalf("record %d data: %v", len(recs), err)
		}
		recs = append(recs, rec)
	}
}

func TestWriterFormat(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
	big := bytes.Repeat([]byte{0x45}, 70000)
	w.WritePacket(t1, []byte{0x45, 1, 2, 3})
	w.WritePacket(t1.Add(time.Second), big)
	w.WritePacket(time.Time{}, []byte{0x60}) // before 1970: clamped
	recs := readPcap(t, &buf)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	if !recs[0].t.Equal(t1.Truncate(time.Microsecond)) || recs[0].incl != 4 || recs[0].orig != 4 || !bytes.Equal(recs[0].data, []byte{0x45, 1, 2, 3}) {
		t.Errorf("record 0 = %+v", recs[0])
	}
	if recs[1].incl != SnapLen || recs[1].orig != 70000 {
		t.Errorf("big record: incl %d orig %d, want %d and 70000", recs[1].incl, recs[1].orig, SnapLen)
	}
	if recs[2].t.Unix() != 0 {
		t.Errorf("pre-1970 time written as %v", recs[2].t)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterError(t *testing.T) {
	w, err := NewWriter(&failWriter{n: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(time.Unix(1, 0), []byte{1}); err == nil {
		t.Fatal("write to a failing writer succeeded")
	}
	if w.Err() == nil || w.WritePacket(time.Unix(1, 0), []byte{1}) == nil {
		t.Fatal("error not sticky")
	}
}

func TestWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pkt := bytes.Repeat([]byte{byte(g)}, 1+i%50)
				w.WritePacket(time.Unix(int64(i), 0), pkt)
			}
		})
	}
	wg.Wait()
	recs := readPcap(t, &buf)
	if len(recs) != 1600 {
		t.Fatalf("%d records, want 1600", len(recs))
	}
	for i, r := range recs {
		if !bytes.Equal(r.data, bytes.Repeat(r.data[:1], len(r.data))) {
			t.Fatalf("record %d interleaved with another: %v", i, r.data)
		}
	}
}

// A tapped memlink pipe under the virtual clock, written to a file and read
// back: both directions, in order, with virtual timestamps.
func TestTapFile(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	v := clock.NewVirtual(start)
	a, b := memlink.Pipe(memlink.Config{Clock: v, AB: memlink.Impairments{Delay: 5 * time.Millisecond}, BA: memlink.Impairments{Delay: 5 * time.Millisecond}})
	defer a.Close()

	path := filepath.Join(t.TempDir(), "tap.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	w, err := NewWriter(bw)
	if err != nil {
		t.Fatal(err)
	}
	ta := Tap(a, w, v)
	// b echoes every packet back.
	b.Attach(link.DispatcherFunc(func(pkt []byte) {
		reply := bytes.Clone(pkt)
		reply[1] = 'R'
		b.WritePackets([][]byte{reply})
	}))
	var got int
	ta.Attach(link.DispatcherFunc(func([]byte) { got++ }))
	for i := range 3 {
		if _, err := ta.WritePackets([][]byte{{0x45, 'Q', byte(i)}}); err != nil {
			t.Fatal(err)
		}
		v.Advance(100 * time.Millisecond)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if w.Err() != nil || got != 3 {
		t.Fatalf("Err %v, %d echoes", w.Err(), got)
	}

	rf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	recs := readPcap(t, rf)
	var lines []string
	for _, r := range recs {
		lines = append(lines, fmt.Sprintf("+%v %c%d", r.t.Sub(start), r.data[1], r.data[2]))
	}
	want := "+0s Q0,+10ms R0,+100ms Q1,+110ms R1,+200ms Q2,+210ms R2"
	if s := strings.Join(lines, ","); s != want {
		t.Fatalf("records %s, want %s", s, want)
	}

	if tshark, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command(tshark, "-r", path).CombinedOutput()
		if err != nil {
			t.Fatalf("tshark cannot read the file: %v\n%s", err, out)
		}
	} else {
		t.Log("tshark not installed; skipping the external reader check")
	}
}
