package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/stmf"
)

// Takeover and release hooks (README "Takeover and release hooks"): for
// LUs whose backing store lives on one node at a time — a zvol whose pool
// sits on shared disks, imported on one node (zpool multihost=on refuses
// a second import, so the import is the fence) — an operator's executable
// imports it before this node serves the LU and exports it after this
// node gave the LU up. Serve (cluster.go) calls takeover, the owner calls
// Release after Stop; with no hook configured nothing changes.

// hookRun is one hook invocation: its argument and what its environment
// tells it.
type hookRun struct {
	Action   string // "takeover" or "release"
	GUID     string
	Alias    string // "" when not known here (the LU was never open)
	Zvol     string // the zvol LU's dataset
	DataFile string // a file LU's data file
	Node     string
	Token    int64 // fencing token of the tenure starting or ending
}

func (r hookRun) env() []string {
	e := []string{"COSTAR_LU_GUID=" + r.GUID, "COSTAR_LU_ALIAS=" + r.Alias, "COSTAR_NODE=" + r.Node,
		"COSTAR_FENCE_TOKEN=" + strconv.FormatInt(r.Token, 10)}
	if r.Zvol != "" {
		return append(e, "COSTAR_ZVOL="+r.Zvol)
	}
	return append(e, "COSTAR_DATA_FILE="+r.DataFile)
}

// hookRunner runs a hook; tests replace it (Daemon.runHook) to act on a
// fake ZFS.
type hookRunner func(ctx context.Context, path string, r hookRun) error

const (
	// hookOutputMax bounds the hook output kept for the log.
	hookOutputMax = 8 << 10
	// hookWaitDelay is how long a killed hook's pipes may stay open (a
	// child it left behind) before Wait gives up on them.
	hookWaitDelay = 2 * time.Second
	// hookRetryEvery is how often a takeover re-checks the LU's zvol.
	hookRetryEvery = 200 * time.Millisecond
)

// execHook runs path with argument r.Action and the COSTAR_* variables
// added to stmfd's environment, no shell, in its own process group (all
// of it is killed when ctx ends or the timeout passes). Its output goes to
// the log, bounded.
func execHook(ctx context.Context, log *slog.Logger, path string, timeout time.Duration, r hookRun) error {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, path, r.Action)
	cmd.Env = append(os.Environ(), r.env()...)
	out := &cappedBuffer{max: hookOutputMax}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = hookWaitDelay
	start := time.Now()
	err := cmd.Run()
	attrs := []any{"hook", path, "action", r.Action, "lu", r.GUID, "took", time.Since(start).Round(time.Millisecond), "output", out.String()}
	switch {
	case err == nil:
		log.Info("cluster hook done", attrs...)
		return nil
	case errors.Is(hctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		err = fmt.Errorf("hook %s %s: killed after the %v timeout: %w", path, r.Action, timeout, err)
	case ctx.Err() != nil:
		err = fmt.Errorf("hook %s %s: cancelled: %w", path, r.Action, ctx.Err())
	default:
		err = fmt.Errorf("hook %s %s: %w", path, r.Action, err)
	}
	log.Warn("cluster hook failed", append(attrs, "err", err)...)
	return err
}

// cappedBuffer keeps the first max bytes written and counts the rest.
type cappedBuffer struct {
	max     int
	mu      sync.Mutex
	b       bytes.Buffer
	dropped int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - c.b.Len()
	if room >= len(p) {
		c.b.Write(p)
	} else {
		c.b.Write(p[:max(room, 0)])
		c.dropped += len(p) - max(room, 0)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(c.b.String())
	if c.dropped > 0 {
		s += fmt.Sprintf(" … (%d bytes more)", c.dropped)
	}
	return s
}

// hookRunnerOf is the daemon's runner: a test's, or execHook.
func (d *Daemon) hookRunnerOf(log *slog.Logger, timeout time.Duration) hookRunner {
	if d.runHook != nil {
		return d.runHook
	}
	return func(ctx context.Context, path string, r hookRun) error {
		return execHook(ctx, log, path, timeout, r)
	}
}

// hookRunOf describes LU guid for its hooks.
func (n *clusterNode) hookRunOf(action, guid string, token int64) (hookRun, mgmt.HandoverLU) {
	h, _ := n.d.mgr.HandoverLUOf(guid)
	return hookRun{Action: action, GUID: guid, Alias: h.Alias, Zvol: h.Zvol, DataFile: h.DataFile, Node: n.cfg.Node, Token: token}, h
}

// waitingForZvol reports an LU this node campaigns for although it cannot
// open it: with a takeover hook, a zvol LU configured online whose zvol is
// not here (its pool imported elsewhere, or nowhere).
func (n *clusterNode) waitingForZvol(h mgmt.HandoverLU) bool {
	return n.cfg.TakeoverHook != "" && h.Zvol != "" && h.Online && !h.Open
}

// takeover runs in Serve before the LU turns active: the takeover hook,
// then, for an LU waiting for its zvol, opening it at once (not at the
// next WatchZvols round) until it is open and registered, bounded by the
// hook timeout. The owner keeps renewing the lease meanwhile
// (internal/cluster/owner_serve.go), so a slow zpool import is no
// self-fence. On failure the release hook runs (it must be idempotent) to
// undo a half-done import, and the error gives the lease up.
func (n *clusterNode) takeover(ctx context.Context, guid string, token int64) error {
	if n.cfg.TakeoverHook == "" {
		return nil
	}
	r, _ := n.hookRunOf("takeover", guid, token)
	err := n.runHook(ctx, n.cfg.TakeoverHook, r)
	if err == nil {
		err = n.waitOpen(ctx, guid)
	}
	if err != nil {
		n.release(guid, token, "takeover failed")
		return fmt.Errorf("taking LU %s over: %w", guid, err)
	}
	return nil
}

// waitOpen waits until LU guid is open here and registered (or configured
// offline), opening its zvol itself.
func (n *clusterNode) waitOpen(ctx context.Context, guid string) error {
	wctx, cancel := context.WithTimeout(ctx, n.cfg.HookTimeout)
	defer cancel()
	g, err := stmf.ParseGUID(guid)
	if err != nil {
		return err
	}
	ready := func() (bool, error) {
		h, ok := n.d.mgr.HandoverLUOf(guid)
		if !ok {
			return false, fmt.Errorf("LU %s is no longer configured", guid)
		}
		_, reg := n.d.fw.LU(g)
		return h.Open && (reg || !h.Online), nil
	}
	var why error
	for {
		ok, err := ready()
		if ok || err != nil {
			return err
		}
		if h, _ := n.d.mgr.HandoverLUOf(guid); h.Zvol != "" {
			why = n.d.mgr.RetryZvolLU(wctx, guid)
			if ok, err := ready(); ok || err != nil {
				return err
			}
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("LU %s not open %v after the takeover hook: %w", guid, n.cfg.HookTimeout, errors.Join(why, wctx.Err()))
		case <-time.After(hookRetryEvery):
		}
	}
}

// Release is cluster.Releaser: it runs after Stop, while the owner still
// holds (and renews) the lease, so the next owner's takeover starts after
// the release hook.
func (n *clusterNode) Release(guid string, token int64) {
	n.release(guid, token, "stopped serving")
}

// release runs after Stop made the LU standby and drained it (and when a
// takeover fails): a zvol LU is closed first — zpool export refuses a
// pool whose zvols are open — and kept closed while the release hook
// runs; it then waits for its zvol again (and stays campaigned for).
// The hook is bounded by its timeout but not cancelled by a shutdown:
// exporting the pool is what lets another node take the LU.
func (n *clusterNode) release(guid string, token int64, reason string) {
	if n.cfg.ReleaseHook == "" {
		return
	}
	r, h := n.hookRunOf("release", guid, token)
	if h.Zvol != "" {
		if err := n.d.mgr.ParkZvolLU(guid, "released to another node ("+reason+")"); err != nil {
			n.log.Warn("closing the LU's zvol before the release hook", "lu", guid, "err", err)
		}
		defer n.d.mgr.UnparkZvolLU(guid)
	}
	if err := n.runHook(context.Background(), n.cfg.ReleaseHook, r); err != nil {
		n.log.Error("release hook failed; the LU's store may still be held here", "lu", guid, "err", err)
	}
}
