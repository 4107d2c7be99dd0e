package fc_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/loopback"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

const (
	targetID = 0x010100
	iniID    = 0x010200
	blockLen = 512
)

var (
	targetWWPN = fc.WWN{0x21, 0, 0, 0x1b, 0x32, 0xaa, 0xbb, 0xcc}
	targetWWNN = fc.WWN{0x20, 0, 0, 0x1b, 0x32, 0xaa, 0xbb, 0xcc}
	iniWWPN    = fc.WWN{0x10, 0, 0, 0, 0xc9, 0x11, 0x22, 0x33}
	iniWWNN    = fc.WWN{0x20, 0, 0, 0, 0xc9, 0x11, 0x22, 0x33}
)

func testLog() *slog.Logger {
	if os.Getenv("FC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is a target port on a loopback adapter with one LU (a real
// lu.Device on memstore, 1 MiB) at LUN 0 and one initiator.
type env struct {
	fw   *stmf.Framework
	port *fc.Port
	ad   *loopback.Adapter
	dev  *lu.Device
	st   *memstore.Store
	ini  *loopback.Initiator
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newEnv(t testing.TB, cfg fc.Config) *env {
	t.Helper()
	return newEnvSized(t, cfg, fc.MaxPayload)
}

// newEnvSized is newEnv over an adapter whose frames carry at most
// maxPayload bytes.
func newEnvSized(t testing.TB, cfg fc.Config, maxPayload int) *env {
	t.Helper()
	ctx := ctxT(t)
	log := testLog()
	e := &env{fw: stmf.New(log), st: memstore.New(1<<20, blockLen, backing.Caps{})}
	d, err := lu.New(ctx, e.st, lu.Config{}, &lu.GUIDGenerator{HostID: lu.HostIDFrom32(0x0fc0)}, log)
	if err != nil {
		t.Fatal(err)
	}
	e.dev = d
	if err := e.fw.RegisterLU(d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fw.AddView(d.GUID(), stmf.ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	e.ad = loopback.New(targetWWPN, targetWWNN).WithMaxPayload(maxPayload)
	cfg.Logger = log
	if e.port, err = fc.NewPort(e.fw, e.ad, cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.port.Online(stmf.DefaultPortGroup); err != nil {
		t.Fatal(err)
	}
	if err := e.port.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.port.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		d.Close()
	})
	if err := e.ad.LinkUp(ctx, targetID, 8000); err != nil {
		t.Fatal(err)
	}
	e.ini = e.ad.NewInitiator(iniID, targetID, iniWWPN, iniWWNN)
	return e
}

// login logs the initiator in and clears the power-on unit attention.
func (e *env) login(t testing.TB) {
	t.Helper()
	ctx := ctxT(t)
	if err := e.ini.Login(ctx); err != nil {
		t.Fatal(err)
	}
	e.cmd(t, e.ini, tur(), nil) // POWER ON RESET unit attention
}

func (e *env) cmd(t testing.TB, in *loopback.Initiator, c *fc.Cmnd, out []byte) loopback.Response {
	t.Helper()
	r, err := in.Command(ctxT(t), c, out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func tur() *fc.Cmnd { return &fc.Cmnd{CDB: []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}} }

func rw10(op byte, lba uint32, blocks uint16) []byte {
	cdb := make([]byte, 10)
	cdb[0] = op
	binary.BigEndian.PutUint32(cdb[2:], lba)
	binary.BigEndian.PutUint16(cdb[7:], blocks)
	return cdb
}

func read10(lba uint32, blocks uint16, dl uint32) *fc.Cmnd {
	return &fc.Cmnd{CDB: rw10(scsi.OpRead10, lba, blocks), Read: true, DataLn: dl}
}

func write10(lba uint32, blocks uint16, dl uint32) *fc.Cmnd {
	return &fc.Cmnd{CDB: rw10(scsi.OpWrite10, lba, blocks), Write: true, DataLn: dl}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func senseKey(s []byte) scsi.SenseKey {
	switch {
	case len(s) > 2 && s[0]&0x7f == 0x70:
		return scsi.SenseKey(s[2] & 0x0f)
	case len(s) > 1 && s[0]&0x7f == 0x72:
		return scsi.SenseKey(s[1] & 0x0f)
	}
	return 0
}

// cancelled is a context that is already done: Await only looks at what
// has arrived.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
