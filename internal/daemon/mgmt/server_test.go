package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/client"
)

func serve(t *testing.T, r *rig) (*Server, *client.Client) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "stmfd.sock")
	srv, err := Listen(sock, r.m.Handler(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, client.New(sock)
}

func TestAPIOverSocket(t *testing.T) {
	r := newRig(t)
	srv, c := serve(t, r)
	fi, err := os.Stat(srv.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	if di, err := os.Stat(filepath.Dir(srv.Path())); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode: %v %v", di, err)
	}
	lu, err := c.CreateLU(bg, api.CreateLURequest{DataFile: "/d/a", Props: api.LUProps{Alias: ptr("a")}})
	if err != nil || lu.Alias != "a" || !api.IsGUID(lu.GUID) {
		t.Fatalf("create-lu: %+v %v", lu, err)
	}
	v, err := c.AddView(bg, api.AddViewRequest{GUID: lu.GUID})
	if err != nil || v.LUN != 0 {
		t.Fatalf("add-view: %+v %v", v, err)
	}
	if err := c.CreateGroup(bg, api.HostGroup, "hg"); err != nil {
		t.Fatal(err)
	}
	st, err := c.GetState(bg)
	if err != nil || st.Operational != "online" || len(st.Portals) != 1 {
		t.Fatalf("state: %+v %v", st, err)
	}

	// Errors arrive typed, with their codes.
	for _, tc := range []struct {
		err  error
		code api.Code
	}{
		{c.CreateGroup(bg, api.HostGroup, "hg"), api.CodeGroupExists},
		{c.DeleteLU(bg, api.DeleteLURequest{GUID: "600144F0000000000000000000000099"}), api.CodeLUNotFound},
		{func() error { _, err := c.AddView(bg, api.AddViewRequest{GUID: lu.GUID}); return err }(), api.CodeViewConflict},
		{c.Call(bg, "NoSuchCall", api.Empty{}, nil), api.CodeInvalidArgument},
		{c.Call(bg, api.MethodCreateGroup, map[string]string{"kind": "host", "bogus": "x"}, nil), api.CodeInvalidArgument},
	} {
		var ae *api.Error
		if !errors.As(tc.err, &ae) || ae.Code != tc.code || ae.Message == "" {
			t.Errorf("got %v, want an *api.Error with code %s", tc.err, tc.code)
		}
	}

	// HTTP statuses follow the codes.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", srv.Path())
	}}}
	body, _ := json.Marshal(api.GroupRequest{Kind: api.HostGroup, Name: "hg"})
	resp, err := hc.Post("http://stmfd/v1/"+api.MethodCreateGroup, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("duplicate group: HTTP %d", resp.StatusCode)
	}
	resp, err = hc.Get("http://stmfd/v1/" + api.MethodListLUs)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET: HTTP %d", resp.StatusCode)
	}

	// A second daemon on the same socket is refused.
	if _, err := Listen(srv.Path(), r.m.Handler(), quietLog()); err == nil {
		t.Fatal("second Listen on a live socket succeeded")
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "stmfd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves the socket file behind, as after kill -9
	r := newRig(t)
	srv, err := Listen(sock, r.m.Handler(), quietLog())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if _, err := client.New(sock).GetState(bg); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after shutdown: %v", err)
	}
	_, err = client.New(sock).GetState(bg)
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("no daemon: %v", err)
	}
}

func TestHTTPStatusCoversCodes(t *testing.T) {
	for code, want := range map[api.Code]int{
		api.CodeLUNotFound:   http.StatusNotFound,
		api.CodeGroupExists:  http.StatusConflict,
		api.CodeViewConflict: http.StatusConflict,
		api.CodeInvalidGUID:  http.StatusBadRequest,
		api.CodeInternal:     http.StatusInternalServerError,
		api.CodeNotSupported: http.StatusNotImplemented,
	} {
		if got := api.HTTPStatus(code); got != want {
			t.Errorf("HTTPStatus(%s) = %d, want %d", code, got, want)
		}
	}
}
