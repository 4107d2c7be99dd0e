package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/test/harness"
)

func TestDiscoveryListsDemoTarget(t *testing.T) {
	harness.RequireTools(t, "iscsi-ls")
	ctx := harness.Context(t, testTimeout)
	d := startDaemon(ctx, t, t.TempDir())

	out := harness.MustExec(ctx, t, "iscsi-ls", "-i", testInitiator, "-s", "iscsi://"+d.Portal)
	if !strings.Contains(out, "Target:"+demoIQN) {
		t.Errorf("iscsi-ls does not list target %s", demoIQN)
	}
	if !strings.Contains(out, "Portal:"+d.Portal) {
		t.Errorf("iscsi-ls does not list portal %s", d.Portal)
	}
	if !regexp.MustCompile(`(?m)^Lun:0\s+Type:DIRECT_ACCESS`).MatchString(out) {
		t.Errorf("iscsi-ls does not list LUN 0 as DIRECT_ACCESS")
	}
}

func TestStandardInquiry(t *testing.T) {
	ctx := harness.Context(t, testTimeout)
	d := startDaemon(ctx, t, t.TempDir())

	kv := keyValues(harness.MustExec(ctx, t, "iscsi-inq", "-i", testInitiator, demoURL(d)))
	for key, want := range map[string]string{
		"Peripheral Qualifier":   "CONNECTED",
		"Peripheral Device Type": "DIRECT_ACCESS",
		"Removable":              "0",
		"CmdQue":                 "1",
	} {
		if got := kv[key]; got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if kv["Vendor"] == "" || kv["Product"] == "" {
		t.Errorf("empty vendor %q or product %q", kv["Vendor"], kv["Product"])
	}
}

// TestDeviceIdentificationStable: VPD page 0x83 carries the LU's NAA
// (COMSTAR GUID); the same state dir keeps it across a restart, a fresh state
// dir gets a different one.
func TestDeviceIdentificationStable(t *testing.T) {
	ctx := harness.Context(t, testTimeout)
	state := t.TempDir()
	d := startDaemon(ctx, t, state)

	out := harness.MustExec(ctx, t, "iscsi-inq", "-i", testInitiator, "-e", "1", "-c", "131", demoURL(d))
	if !strings.Contains(out, "Page Code:(0x83)") || !strings.Contains(out, "Designator Type:(3) NAA") {
		t.Fatalf("page 0x83 without an NAA designator:\n%s", out)
	}
	printed, ok := naaFromInqOutput([]byte(out))
	if !ok || len(printed) == 0 {
		t.Fatalf("cannot find the NAA designator bytes in iscsi-inq output")
	}
	naa1, err := deviceIdentification(ctx, d.Portal, demoIQN, 0)
	if err != nil {
		t.Fatalf("raw INQUIRY: %v", err)
	}
	t.Logf("NAA designator: %s", naa1)
	if len(naa1) != 32 || naa1[0] != '6' {
		t.Errorf("NAA designator %s: want 16 bytes of NAA type 6 (IEEE registered extended)", naa1)
	}
	// iscsi-inq printed the same designator (up to its first zero byte)
	if got := fmt.Sprintf("%x", printed); !strings.HasPrefix(naa1, got) {
		t.Errorf("iscsi-inq shows designator %s, raw INQUIRY %s", got, naa1)
	}

	if code, took := d.Stop(); code != 0 {
		t.Fatalf("stmfd exited %d after SIGTERM (%v)", code, took)
	}
	d2 := startDaemon(ctx, t, state)
	naa2, err := deviceIdentification(ctx, d2.Portal, demoIQN, 0)
	if err != nil {
		t.Fatalf("raw INQUIRY after restart: %v", err)
	}
	if naa2 != naa1 {
		t.Errorf("GUID changed across restart with the same state dir: %s -> %s", naa1, naa2)
	}
	out2 := harness.MustExec(ctx, t, "iscsi-inq", "-i", testInitiator, "-e", "1", "-c", "131", demoURL(d2))
	if printed2, _ := naaFromInqOutput([]byte(out2)); !bytes.Equal(printed2, printed) {
		t.Errorf("iscsi-inq designator changed across restart: %x -> %x", printed, printed2)
	}

	d3 := startDaemon(ctx, t, t.TempDir())
	naa3, err := deviceIdentification(ctx, d3.Portal, demoIQN, 0)
	if err != nil {
		t.Fatalf("raw INQUIRY on a second state dir: %v", err)
	}
	if naa3 == naa1 {
		t.Errorf("two fresh state dirs produced the same GUID %s", naa1)
	}
}

func TestReadCapacity16(t *testing.T) {
	harness.RequireTools(t, "iscsi-readcapacity16")
	ctx := harness.Context(t, testTimeout)
	d := startDaemon(ctx, t, t.TempDir())

	kv := keyValues(harness.MustExec(ctx, t, "iscsi-readcapacity16", "-i", testInitiator, demoURL(d)))
	size := atoi64(t, "Total size", kv["Total size"])
	bs := atoi64(t, "block length", kv["LOGICAL BLOCK LENGTH IN BYTES"])
	lastLBA := atoi64(t, "last LBA", kv["RETURNED LOGICAL BLOCK ADDRESS"])
	if size != gib {
		t.Errorf("total size %d, want %d (1 GiB demo LU)", size, gib)
	}
	if bs != 512 && bs != 4096 {
		t.Errorf("block length %d, want 512 or 4096", bs)
	}
	if (lastLBA+1)*bs != size {
		t.Errorf("(last LBA %d + 1) * %d != total size %d", lastLBA, bs, size)
	}
}

// qemuIO runs qemu-io with the given -c commands against url.
func qemuIO(ctx context.Context, t *testing.T, url string, cmds ...string) (string, error) {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return harness.Exec(ctx, t, "qemu-io", append(args, url)...)
}

// verifyPatterns reads each region with qemu-io's pattern check and fails the
// test on a mismatch or an incomplete read.
func verifyPatterns(ctx context.Context, t *testing.T, url string, regions []region) {
	t.Helper()
	var cmds []string
	for _, r := range regions {
		cmds = append(cmds, fmt.Sprintf("read -P %#x %d %d", r.pattern, r.off, r.len))
	}
	out, err := qemuIO(ctx, t, url, cmds...)
	if err != nil {
		t.Fatalf("verified reads: %v\n%s", err, out)
	}
	if strings.Contains(out, "Pattern verification failed") {
		t.Fatalf("data mismatch:\n%s", out)
	}
	if n := len(readDoneRe.FindAllString(out, -1)); n != len(regions) {
		t.Fatalf("%d of %d verified reads completed:\n%s", n, len(regions), out)
	}
}

type region struct {
	pattern  byte
	off, len int64
}

func writePatterns(ctx context.Context, t *testing.T, url string, regions []region) {
	t.Helper()
	var cmds []string
	for _, r := range regions {
		cmds = append(cmds, fmt.Sprintf("write -P %#x %d %d", r.pattern, r.off, r.len))
	}
	out, err := qemuIO(ctx, t, url, cmds...)
	if err != nil {
		t.Fatalf("pattern writes: %v\n%s", err, out)
	}
	if n := len(wroteDoneRe.FindAllString(out, -1)); n != len(regions) {
		t.Fatalf("%d of %d writes completed:\n%s", n, len(regions), out)
	}
}

func testRegions() []region {
	return []region{
		{0xab, 0, mib},               // first MiB
		{0xcd, mib, mib},             // the next one
		{0x5a, 3*mib + 4095, 1},      // a single unaligned byte (read-modify-write in qemu)
		{0x11, 5*mib + 512, 7 * 512}, // odd sector count, not 4 KiB aligned
		{0x77, gib - 4096, 4096},     // last 4 KiB of the LU
	}
}

func TestQemuIOPatterns(t *testing.T) {
	harness.RequireQemuISCSI(t)
	ctx := harness.Context(t, testTimeout)
	d := startDaemon(ctx, t, t.TempDir())

	writePatterns(ctx, t, demoURL(d), testRegions())
	verifyPatterns(ctx, t, demoURL(d), append(testRegions(),
		region{0x00, 2 * mib, mib},             // never written: zeros
		region{0x00, 3 * mib, 4095},            // zeros up to the single byte
		region{0x00, 3*mib + 4096, mib - 4096}, // and after it
	))

	// The check must be able to fail: a wrong pattern is reported.
	out, err := qemuIO(ctx, t, demoURL(d), "read -P 0xcd 0 1M")
	if !strings.Contains(out, "Pattern verification failed") {
		t.Errorf("reading 0xab data with expected pattern 0xcd was not reported as a mismatch (err %v)", err)
	}
	out, err = qemuIO(ctx, t, demoURL(d), fmt.Sprintf("read -P 0x77 %d 8192", gib-8192))
	if !strings.Contains(out, "Pattern verification failed") {
		t.Errorf("a half-matching region was not reported as a mismatch (err %v)", err)
	}
}

// randomImage writes a deterministic pseudo-random raw image of size bytes.
func randomImage(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "random.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewChaCha8([32]byte{'c', 'o', 's', 't', 'a', 'r'}))
	w := bufio.NewWriterSize(f, int(mib))
	buf := make([]byte, 64*1024)
	for written := int64(0); written < size; written += int64(len(buf)) {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestQemuImgConvertCompare(t *testing.T) {
	harness.RequireQemuISCSI(t)
	ctx := harness.Context(t, testTimeout)
	const size = 64 * mib
	// An LU of the image's size, so compare checks every byte of both.
	d := startDaemon(ctx, t, t.TempDir(), "--demo-size", "64M")
	src := randomImage(t, size)

	info := harness.MustExec(ctx, t, "qemu-img", "info", "-f", "raw", demoURL(d))
	if !strings.Contains(info, fmt.Sprintf("(%d bytes)", size)) {
		t.Fatalf("qemu-img info does not show a %d-byte LU", size)
	}
	harness.MustExec(ctx, t, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, demoURL(d))
	out := harness.MustExec(ctx, t, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, demoURL(d))
	if !strings.Contains(out, "Images are identical") {
		t.Fatalf("qemu-img compare did not report identical images")
	}

	// Change one sector on the target: compare must notice (exit 1).
	writePatterns(ctx, t, demoURL(d), []region{{0x00, 40*mib + 512, 512}})
	out, err := harness.Exec(ctx, t, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, demoURL(d))
	var exitErr *exec.ExitError
	if err == nil || !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 || !strings.Contains(out, "Content mismatch") {
		t.Fatalf("compare after changing a sector: err %v, want exit 1 with a content mismatch", err)
	}
	if !strings.Contains(out, strconv.FormatInt(40*mib+512, 10)) {
		t.Errorf("mismatch reported at the wrong offset (want %d)", 40*mib+512)
	}
}

// qemu-io's completion lines, e.g. "wrote 1048576/1048576 bytes at offset 0".
var (
	wroteRe     = regexp.MustCompile(`^wrote (\d+)/(\d+) bytes at offset (\d+)`)
	wroteDoneRe = regexp.MustCompile(`(?m)^wrote \d+/\d+ bytes at offset \d+$`)
	readDoneRe  = regexp.MustCompile(`(?m)^read \d+/\d+ bytes at offset \d+$`)
)

// TestSIGTERMDrainsInFlightIO queues many concurrent writes (qemu-io
// aio_write), sends SIGTERM while they run, and checks that stmfd exits 0 in
// time and that every write the initiator saw acknowledged is on disk after a
// restart on the same state dir.
func TestSIGTERMDrainsInFlightIO(t *testing.T) {
	harness.RequireQemuISCSI(t)
	harness.RequireTools(t, "stdbuf")
	ctx := harness.Context(t, testTimeout)
	state := t.TempDir()
	d := startDaemon(ctx, t, state)

	const chunk, count = 256 * 1024, 1024 // 256 MiB in flight-able 256 KiB writes
	args := []string{"-f", "raw"}
	for i := 0; i < count; i++ {
		args = append(args, "-c", fmt.Sprintf("aio_write -P %#x %d %d", patternFor(i), int64(i)*chunk, chunk))
	}
	args = append(args, "-c", "aio_flush", demoURL(d))
	qctx, qcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer qcancel()
	// stdbuf: qemu-io's stdout is a pipe; line-buffer it so every ack is seen when printed
	q := exec.CommandContext(qctx, "stdbuf", append([]string{"-oL", "qemu-io"}, args...)...)
	q.WaitDelay = 5 * time.Second
	stdout, err := q.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	q.Stderr = &stderr
	if err := q.Start(); err != nil {
		t.Fatalf("qemu-io: %v", err)
	}

	var (
		mu    sync.Mutex
		acked = map[int64]bool{}
	)
	sawEnough := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			m := wroteRe.FindStringSubmatch(sc.Text())
			if m == nil || m[1] != m[2] {
				continue
			}
			off, _ := strconv.ParseInt(m[3], 10, 64)
			mu.Lock()
			acked[off] = true
			n := len(acked)
			mu.Unlock()
			if n >= 32 && !signalled {
				signalled = true
				close(sawEnough)
			}
		}
	}()

	select {
	case <-sawEnough:
	case <-readDone:
		t.Fatalf("qemu-io ended before 32 writes were acknowledged: %s", stderr.String())
	case <-ctx.Done():
		t.Fatal("timed out waiting for the first writes")
	}
	mu.Lock()
	atSignal := len(acked)
	mu.Unlock()
	code, took := d.Stop()
	t.Logf("SIGTERM after %d acknowledged writes; stmfd exited %d after %v", atSignal, code, took)
	if code != 0 {
		t.Errorf("stmfd exit status %d after SIGTERM, want 0", code)
	}

	// The initiator may now be retrying against a dead portal: stop it before
	// a new daemon appears on a port it could reconnect to.
	_ = q.Process.Kill()
	<-readDone
	_ = q.Wait()

	mu.Lock()
	var regions []region
	for off := range acked {
		regions = append(regions, region{patternFor(int(off / chunk)), off, chunk})
	}
	mu.Unlock()
	sort.Slice(regions, func(i, j int) bool { return regions[i].off < regions[j].off })
	t.Logf("%d of %d writes acknowledged in total (%d after SIGTERM)", len(regions), count, len(regions)-atSignal)

	d2 := startDaemon(ctx, t, state)
	verifyPatterns(ctx, t, demoURL(d2), regions)
}

// patternFor gives write i a non-zero byte pattern distinct from its neighbours.
func patternFor(i int) byte { return byte(i%251 + 1) }

// TestKill9Restart: data acknowledged before a SIGKILL is there after a
// restart on the same state dir, the LU keeps its GUID, and it accepts writes.
func TestKill9Restart(t *testing.T) {
	harness.RequireQemuISCSI(t)
	ctx := harness.Context(t, testTimeout)
	state := t.TempDir()
	d := startDaemon(ctx, t, state)
	naa1, err := deviceIdentification(ctx, d.Portal, demoIQN, 0)
	if err != nil {
		t.Fatalf("raw INQUIRY: %v", err)
	}
	writePatterns(ctx, t, demoURL(d), testRegions())
	d.Kill()

	d2 := startDaemon(ctx, t, state)
	verifyPatterns(ctx, t, demoURL(d2), testRegions())
	naa2, err := deviceIdentification(ctx, d2.Portal, demoIQN, 0)
	if err != nil {
		t.Fatalf("raw INQUIRY after restart: %v", err)
	}
	if naa1 != naa2 {
		t.Errorf("GUID changed across kill -9: %s -> %s", naa1, naa2)
	}
	more := []region{{0xee, 10 * mib, mib}}
	writePatterns(ctx, t, demoURL(d2), more)
	verifyPatterns(ctx, t, demoURL(d2), append(more, testRegions()...))
}
