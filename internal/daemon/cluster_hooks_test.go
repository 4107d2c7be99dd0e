package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// The real exec path: argument and environment as documented, output in
// the log (bounded), failures and timeouts as errors, the whole process
// group killed on timeout.
func TestExecHook(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	pidFile := filepath.Join(dir, "pid")
	record := writeScript(t, dir, "record", `echo "$# $1 guid=$COSTAR_LU_GUID alias=$COSTAR_LU_ALIAS zvol=$COSTAR_ZVOL file=$COSTAR_DATA_FILE token=$COSTAR_FENCE_TOKEN node=$COSTAR_NODE" > `+rec+`
echo imported the pool
`)
	fail := writeScript(t, dir, "fail", "echo cannot import pool: multihost check failed >&2\nexit 3\n")
	slow := writeScript(t, dir, "slow", "sleep 30 &\necho $! > "+pidFile+"\nwait\n")
	loud := writeScript(t, dir, "loud", "i=0; while [ $i -lt 2000 ]; do echo 0123456789abcdef; i=$((i+1)); done\n")
	zv := hookRun{Action: "takeover", GUID: "600144F0C0A8000100000000000000AA", Alias: "vm1", Zvol: "tank/vm1", Node: "head-a", Token: 42}
	fileLU := hookRun{Action: "release", GUID: "600144F0C0A8000100000000000000BB", DataFile: "/shared/b.img", Node: "head-b", Token: 7}
	for _, tc := range []struct {
		name    string
		path    string
		run     hookRun
		timeout time.Duration
		wantErr string // "" success
		wantRec string // the record script's line
		wantLog string
	}{
		{"zvol takeover", record, zv, 5 * time.Second, "",
			"1 takeover guid=600144F0C0A8000100000000000000AA alias=vm1 zvol=tank/vm1 file= token=42 node=head-a", "imported the pool"},
		{"file LU release", record, fileLU, 5 * time.Second, "",
			"1 release guid=600144F0C0A8000100000000000000BB alias= zvol= file=/shared/b.img token=7 node=head-b", "cluster hook done"},
		{"exit status", fail, zv, 5 * time.Second, "exit status 3", "", "multihost check failed"},
		{"timeout", slow, zv, 300 * time.Millisecond, "killed after the 300ms timeout", "", "cluster hook failed"},
		{"output bounded", loud, zv, 5 * time.Second, "", "", "bytes more"},
		{"missing executable", filepath.Join(dir, "nope"), zv, 5 * time.Second, "no such file", "", "cluster hook failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(rec)
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			start := time.Now()
			err := execHook(t.Context(), log, tc.path, tc.timeout, tc.run)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.wantRec != "" {
				b, _ := os.ReadFile(rec)
				if got := strings.TrimSpace(string(b)); got != tc.wantRec {
					t.Errorf("hook saw %q, want %q", got, tc.wantRec)
				}
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q lacks %q", logs.String(), tc.wantLog)
			}
			if len(logs.String()) > 2*hookOutputMax {
				t.Errorf("log of %d bytes: output not bounded", logs.Len())
			}
			if tc.path == slow {
				if time.Since(start) > 10*time.Second {
					t.Errorf("timed-out hook returned after %v", time.Since(start))
				}
				b, _ := os.ReadFile(pidFile)
				if pid := strings.TrimSpace(string(b)); pid != "" {
					// SIGKILL went to the group; dying takes a moment on a
					// loaded machine (bounded wait, not a timing assertion).
					alive := func() bool {
						st, err := os.ReadFile("/proc/" + pid + "/stat")
						return err == nil && !strings.Contains(string(st), ") Z ")
					}
					for end := time.Now().Add(5 * time.Second); alive() && time.Now().Before(end); {
						time.Sleep(20 * time.Millisecond)
					}
					if alive() {
						t.Errorf("the hook's child %s outlived the timeout", pid)
					}
				}
			}
		})
	}
}

// A shutdown cancels a running hook at once.
func TestExecHookCancelled(t *testing.T) {
	slow := writeScript(t, t.TempDir(), "slow", "sleep 30\n")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := execHook(ctx, slog.New(slog.DiscardHandler), slow, time.Minute, hookRun{Action: "takeover"})
	if err == nil || !strings.Contains(err.Error(), "cancelled") || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled hook: %v after %v", err, time.Since(start))
	}
}
