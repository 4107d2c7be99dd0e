package iscsi

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// TestNoGoroutineLeak runs many login/IO/logout cycles and abrupt
// disconnects (with tasks in flight and writes half sent) and checks that
// every goroutine they started is gone afterwards.
func TestNoGoroutineLeak(t *testing.T) {
	env := startServer(t, nil)
	// Warm up once so lazily started runtime goroutines are counted.
	w := dial(t, env.addr)
	w.login(testTarget)
	w.logout()
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()

	for i := 0; i < 30; i++ {
		in := dial(t, env.addr)
		in.isid[5] = byte(i)
		in.login(testTarget, kv("ImmediateData", "No"), kv("MaxBurstLength", "8192"))
		writeThenRead(t, in, uint32(i*16), 16384, byte(i))
		in.logout()
	}
	for i := 0; i < 20; i++ {
		in := dial(t, env.addr)
		in.isid[5] = byte(100 + i)
		switch i % 4 {
		case 0: // drop during login
			in.loginPDU(false, 0, 0, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", testTarget)}, nil)
		case 1: // drop with a task stuck in the LU
			in.login(testTarget)
			in.scsiCmd([]byte{opWait}, false, false, 0, nil, false)
			env.waitStarted(t)
		case 2: // drop with a write waiting for Data-Out
			in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"))
			in.scsiCmd(cdbRW(0x2a, 0, 64), false, true, 64*512, nil, false)
			in.expect(pdu.OpR2T)
		case 3: // drop a discovery session
			in.login("")
		}
		in.nc.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Both: a transient goroutine counted in before may have exited
		// while a connection is still closing.
		n := runtime.NumGoroutine()
		if n <= before && len(env.srv.Sessions()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(env.srv.Sessions()); n != 0 {
		t.Fatalf("%d sessions left: %+v", n, env.srv.Sessions())
	}
}

func TestShutdown(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget)
	itt := in.scsiCmd([]byte{opWait}, false, false, 0, nil, false)
	env.waitStarted(t)
	before := runtime.NumGoroutine()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- env.srv.Shutdown(ctx)
	}()
	// The initiator is asked to log out, the in-flight task may finish.
	h, _ := in.expect(pdu.OpAsyncMsg)
	if h[36] != 1 {
		t.Fatalf("async event %d", h[36])
	}
	close(env.lu.release)
	if r := in.wait(nil, itt)[itt]; r.status != 0 {
		t.Fatalf("in-flight task: %v", r)
	}
	in.logout()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if runtime.NumGoroutine() >= before {
		t.Fatalf("goroutines %d >= %d", runtime.NumGoroutine(), before)
	}
	if _, err := dialErr(env.addr); err == nil {
		t.Fatal("still accepting")
	}
	if err := env.srv.Start(context.Background()); err == nil {
		t.Fatal("restart after shutdown accepted")
	}
}
