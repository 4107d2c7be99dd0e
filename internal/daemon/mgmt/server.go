package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/costar-project/costar/api"
)

// maxRequest bounds a request body (the largest are lists of names).
const maxRequest = 1 << 20

// Handler serves the management API (see package api) for m.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	route(mux, m.log, api.MethodGetState, m.GetState)
	route(mux, m.log, api.MethodListLUs, m.ListLUs)
	routeLong(mux, m.log, api.MethodCreateLU, m.CreateLU)
	routeLong(mux, m.log, api.MethodImportLU, m.ImportLU)
	routeLong(mux, m.log, api.MethodModifyLU, m.ModifyLU)
	route(mux, m.log, api.MethodDeleteLU, m.DeleteLU)
	route(mux, m.log, api.MethodOnlineLU, m.OnlineLU)
	route(mux, m.log, api.MethodOfflineLU, m.OfflineLU)
	routeLong(mux, m.log, api.MethodCreateZvolLU, m.CreateZvolLU) // zvol_lus.go
	routeLong(mux, m.log, api.MethodImportZvolLU, m.ImportZvolLU)
	routeLong(mux, m.log, api.MethodSnapshotLU, m.SnapshotLU)
	routeLong(mux, m.log, api.MethodCloneLU, m.CloneLU)
	routeLong(mux, m.log, api.MethodDestroyLU, m.DestroyLU)
	route(mux, m.log, api.MethodListViews, m.ListViews)
	route(mux, m.log, api.MethodAddView, m.AddView)
	route(mux, m.log, api.MethodRemoveView, m.RemoveView)
	route(mux, m.log, api.MethodListGroups, m.ListGroups)
	route(mux, m.log, api.MethodCreateGroup, m.CreateGroup)
	route(mux, m.log, api.MethodDeleteGroup, m.DeleteGroup)
	route(mux, m.log, api.MethodAddGroupMember, m.AddGroupMember)
	route(mux, m.log, api.MethodRemoveGroupMember, m.RemoveGroupMember)
	route(mux, m.log, api.MethodListTargets, m.ListTargets)
	route(mux, m.log, api.MethodListFCPorts, m.ListFCPorts)
	route(mux, m.log, api.MethodCreateTarget, m.CreateTarget)
	route(mux, m.log, api.MethodModifyTarget, m.ModifyTarget)
	route(mux, m.log, api.MethodDeleteTarget, m.DeleteTarget)
	route(mux, m.log, api.MethodOnlineTarget, m.OnlineTarget)
	route(mux, m.log, api.MethodOfflineTarget, m.OfflineTarget)
	route(mux, m.log, api.MethodListTPGs, m.ListTPGs)
	route(mux, m.log, api.MethodCreateTPG, m.CreateTPG)
	route(mux, m.log, api.MethodDeleteTPG, m.DeleteTPG)
	route(mux, m.log, api.MethodListInitiators, m.ListInitiators)
	route(mux, m.log, api.MethodCreateInitiator, m.CreateInitiator)
	route(mux, m.log, api.MethodModifyInitiator, m.ModifyInitiator)
	route(mux, m.log, api.MethodDeleteInitiator, m.DeleteInitiator)
	route(mux, m.log, api.MethodGetDefaults, m.GetDefaults)
	route(mux, m.log, api.MethodModifyDefaults, m.ModifyDefaults)
	route(mux, m.log, api.MethodSetALUAState, m.SetALUAState)
	route(mux, m.log, api.MethodExportConfig, m.ExportConfig) // apply.go
	route(mux, m.log, api.MethodApplyConfig, m.ApplyConfig)
	route(mux, m.log, api.MethodGetStats, m.GetStats)       // stats.go
	route(mux, m.log, api.MethodListCluster, m.ListCluster) // cluster.go
	route(mux, m.log, api.MethodMoveLU, m.MoveLU)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, m.log, api.Errorf(api.CodeInvalidArgument, r.URL.Path, "unknown API call %s %s", r.Method, r.URL.Path))
	})
	return m.serialised(mux) // apply_tx.go
}

// route registers one API call. A request runs to completion even if the
// client goes away, so a change is never left half done.
func route[Req, Resp any](mux *http.ServeMux, log *slog.Logger, method string, f func(context.Context, Req) (Resp, error)) {
	mux.HandleFunc("POST /v1/"+method, func(w http.ResponseWriter, r *http.Request) {
		req, ok := decodeRequest[Req](w, r, log, method)
		if !ok {
			return
		}
		resp, err := f(context.WithoutCancel(r.Context()), req)
		answer(w, log, method, resp, err)
	})
}

// decodeRequest reads a call's JSON body, answering a bad one.
func decodeRequest[Req any](w http.ResponseWriter, r *http.Request, log *slog.Logger, method string) (Req, bool) {
	var req Req
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, log, api.Errorf(api.CodeInvalidArgument, method, "bad request body: %v", err))
		return req, false
	}
	return req, true
}

// answer writes a call's single JSON answer.
func answer(w http.ResponseWriter, log *slog.Logger, method string, resp any, err error) {
	if err != nil {
		writeError(w, log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		log.Warn("writing API response", "method", method, "err", err)
	}
}

func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		log.Error("management API call failed", "err", err)
		ae = api.Errorf(api.CodeInternal, "", "%v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(api.HTTPStatus(ae.Code))
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: ae})
}

// Server serves the management API on a unix socket.
type Server struct {
	path string
	l    net.Listener
	http *http.Server
	done chan error
}

// Listen creates the API socket at path, mode 0600 in a directory only the
// daemon's user can enter, refusing when another daemon is serving there.
// Connections from other users than root and the daemon's own are closed.
func Listen(path string, h http.Handler, log *slog.Logger) (*Server, error) {
	if err := TightenDir(filepath.Dir(path), log); err != nil {
		return nil, fmt.Errorf("management socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			// Never delete what is not ours to delete: a typo in
			// --socket must not cost a file.
			return nil, fmt.Errorf("management socket %s: exists and is not a socket (%s); refusing to remove it", path, fi.Mode().Type())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("management socket %s: another stmfd is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("management socket: removing stale %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("management socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("management socket: %w", err)
	}
	s := &Server{
		path: path,
		l:    &peerCheckListener{Listener: l, log: log, allow: ownerOrRoot(os.Getuid())},
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(s.l) }()
	return s, nil
}

// Path is the socket path.
func (s *Server) Path() string { return s.path }

// Shutdown stops accepting calls, waits for running ones (bounded by ctx)
// and removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// TightenDir creates dir (mode 0700) or, when it exists with access for
// group or others, takes that access away and says so. A shared sticky
// directory (/tmp) or one owned by another user is left alone.
func TightenDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	mode := fi.Mode()
	if mode.Perm()&0o077 == 0 || mode&os.ModeSticky != 0 {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		log.Warn("directory is open to other users and not ours to tighten", "dir", dir, "mode", mode.Perm().String(), "owner_uid", st.Uid)
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("tightening %s: %w", dir, err)
	}
	log.Warn("directory mode tightened: only the daemon's user may enter it", "dir", dir, "was", mode.Perm().String(), "now", "-rwx------")
	return nil
}

// peerCheckListener admits only peers running as root or as the daemon's
// user (SO_PEERCRED), whatever the socket's permissions.
type peerCheckListener struct {
	net.Listener
	log   *slog.Logger
	allow func(uid int) bool
}

// ownerOrRoot admits root and the daemon's own user.
func ownerOrRoot(self int) func(int) bool {
	return func(uid int) bool { return uid == 0 || uid == self }
}

func (l *peerCheckListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && l.allow(uid) {
			return c, nil
		}
		l.log.Warn("management API connection refused", "peer_uid", uid, "err", err)
		c.Close()
	}
}

func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, fmt.Errorf("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if serr != nil {
		return -1, serr
	}
	return int(cred.Uid), nil
}
