package hotpath

import (
	"bufio"
	"encoding/binary"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

const (
	target    = Target
	initName  = "iqn.2026-12.test:hotpath-init"
	luSize    = LUSize
	blockSize = BlockSize
)

// client is a QD1 initiator with fixed buffers: nothing it does per
// command allocates.
type client struct {
	tb        testing.TB
	nc        net.Conn
	rd        *pdu.Reader
	out       []byte // header + immediate data of the next command
	hdr, rsp  pdu.Header
	data      []byte // Data-In lands here
	cmdSN     uint32
	expStatSN uint32
	itt       uint32
}

func dial(tb testing.TB, addr string) *client {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	c := &client{tb: tb, nc: nc, rd: pdu.NewReader(bufio.NewReaderSize(nc, 64<<10), 1<<20),
		out: make([]byte, 48+1<<20), data: make([]byte, 1<<20), cmdSN: 1}
	// One login request straight into the operational stage (no security
	// negotiation is needed without CHAP).
	var h pdu.Header
	h.SetOpcode(pdu.OpLoginReq, true)
	h.SetLoginFlags(true, false, pdu.StageOperational, pdu.StageFullFeature)
	h.SetISID([6]byte{0x80, 0, 0, 0, 0, 1})
	h.SetCID(1)
	h.SetU32(pdu.OffCmdSN, c.cmdSN)
	kv := pdu.EncodeText([]pdu.KV{{Key: "InitiatorName", Value: initName}, {Key: "TargetName", Value: target},
		{Key: "SessionType", Value: "Normal"}, {Key: "HeaderDigest", Value: "None"}, {Key: "DataDigest", Value: "None"},
		{Key: "ImmediateData", Value: "Yes"}, {Key: "InitialR2T", Value: "No"},
		{Key: "MaxRecvDataSegmentLength", Value: "262144"}, {Key: "FirstBurstLength", Value: "65536"}})
	if _, err := nc.Write(pdu.AppendPDU(nil, &h, nil, kv, false, false)); err != nil {
		tb.Fatal(err)
	}
	var r pdu.Header
	if _, err := c.rd.ReadHeader(&r); err != nil {
		tb.Fatal(err)
	}
	if err := c.rd.DiscardData(&r); err != nil {
		tb.Fatal(err)
	}
	if r.Opcode() != pdu.OpLoginResp || r[36] != 0 || !r.Final() {
		tb.Fatalf("login: opcode %s status %#x/%#x", r.Opcode(), r[36], r[37])
	}
	c.expStatSN = r.U32(pdu.OffStatSN) + 1
	c.do(make([]byte, 16), 0, false) // the power-on unit attention
	return c
}

// do sends one command (a write carries n bytes of immediate data) and
// reads its answer; it returns the SCSI status.
func (c *client) do(cdb []byte, n uint32, write bool) byte {
	c.itt++
	h := &c.hdr
	*h = pdu.Header{}
	h.SetOpcode(pdu.OpSCSICmd, false)
	f := byte(pdu.FlagFinal | 1)
	imm := uint32(0)
	switch {
	case write:
		f |= pdu.FlagWrite
		imm = n
	case n > 0:
		f |= pdu.FlagRead
	}
	h.SetFlags(f)
	h.SetITT(c.itt)
	h.SetU32(pdu.OffEDTL, n)
	h.SetU32(pdu.OffCmdSN, c.cmdSN)
	h.SetU32(pdu.OffExpStatSN, c.expStatSN)
	h.SetDataSegmentLength(imm)
	copy(h.CDB16(), cdb)
	c.cmdSN++
	copy(c.out, h[:])
	if _, err := c.nc.Write(c.out[:48+imm]); err != nil {
		c.tb.Fatal(err)
	}
	for {
		r := &c.rsp
		if _, err := c.rd.ReadHeader(r); err != nil {
			c.tb.Fatal(err)
		}
		dl := r.DataSegmentLength()
		if err := c.rd.ReadData(r, c.data[:dl]); err != nil {
			c.tb.Fatal(err)
		}
		switch r.Opcode() {
		case pdu.OpDataIn:
			if r.Flags()&pdu.FlagStatus != 0 {
				c.expStatSN = r.U32(pdu.OffStatSN) + 1
				return r[3]
			}
		case pdu.OpSCSIResp:
			c.expStatSN = r.U32(pdu.OffStatSN) + 1
			return r[3]
		case pdu.OpNOPIn:
		default:
			c.tb.Fatalf("unexpected %s", r.Opcode())
		}
	}
}

func cdb16(op byte, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0] = op
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

func benchRW(b *testing.B, op byte, write bool) { benchRWFenced(b, op, write, 0) }

func benchRWFenced(b *testing.B, op byte, write bool, token int64) {
	c := dial(b, StartTarget(b, token))
	const n = 4096
	cdbs := make([][]byte, 64)
	for i := range cdbs {
		cdbs[i] = cdb16(op, uint64(i*8), n/blockSize)
	}
	b.SetBytes(n)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		if st := c.do(cdbs[i%len(cdbs)], n, write); st != 0 {
			b.Fatalf("status %#x", st)
		}
	}
	// The process's CPU time (target and client) per command: steadier
	// than ns/op on a shared machine.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRead4K is READ(16) of 4 KiB at QD1 through the whole target.
func BenchmarkRead4K(b *testing.B) { benchRW(b, 0x88, false) }

// BenchmarkWrite4K is WRITE(16) of 4 KiB (immediate data) at QD1.
func BenchmarkWrite4K(b *testing.B) { benchRW(b, 0x8a, true) }

// BenchmarkWrite4KFenced is BenchmarkWrite4K with a fencing token set:
// the check before every store write (the memstore's token read stands in
// for the file store's metadata read, made at most every lu.FenceWindow).
func BenchmarkWrite4KFenced(b *testing.B) { benchRWFenced(b, 0x8a, true, 7) }

// TestClientRoundTrip checks the benchmark's client against the target:
// what it writes it reads back (the benchmarks would time errors).
func TestClientRoundTrip(t *testing.T) {
	c := dial(t, StartTarget(t, 0))
	for i := range 4096 {
		c.out[48+i] = byte(i * 13)
	}
	if st := c.do(cdb16(0x8a, 80, 8), 4096, true); st != 0 {
		t.Fatalf("write status %#x", st)
	}
	clear(c.data)
	if st := c.do(cdb16(0x88, 80, 8), 4096, false); st != 0 {
		t.Fatalf("read status %#x", st)
	}
	for i := range 4096 {
		if c.data[i] != byte(i*13) {
			t.Fatalf("byte %d: %#x, want %#x", i, c.data[i], byte(i*13))
		}
	}
}

// TestRoundTripAllocations counts what a 4 KiB READ and WRITE allocate in
// the whole process (the client allocates nothing): the command struct
// (its task, CDB and result live in it), and for a write its range-lock
// entry. The PDU buffers, the Data-In and Data-Out buffers and the write's
// Data-Out wait come from pools or are not needed at QD1.
func TestRoundTripAllocations(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector allocates on its own")
	}
	c := dial(t, StartTarget(t, 0))
	for _, tc := range []struct {
		name  string
		op    byte
		write bool
		want  float64
	}{
		{"read", 0x88, false, 1},
		{"write", 0x8a, true, 2},
	} {
		i := 0
		run := func() {
			i++
			if st := c.do(cdb16(tc.op, uint64(i%64)*8, 8), 4096, tc.write); st != 0 {
				t.Fatalf("%s: status %#x", tc.name, st)
			}
		}
		for range 100 {
			run() // warm the pools
		}
		if got := testing.AllocsPerRun(2000, run); got > tc.want {
			t.Errorf("%s: %.2f allocations per 4 KiB command, want at most %.0f", tc.name, got, tc.want)
		}
	}
}
