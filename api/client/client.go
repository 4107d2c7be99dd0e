// Package client is the typed Go client of stmfd's management API, used by
// stmfadm, sbdadm and itadm.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/costar-project/costar/api"
)

// Default socket locations, tried in order when neither --socket nor
// STMFD_SOCKET is given: the installed daemon's, then the development
// default (stmfd run from the source tree).
const (
	InstalledSocket = "/var/lib/stmfd/stmfd.sock"
	DevSocket       = "var/stmfd/stmfd.sock"
)

// SocketPath resolves the API socket: explicit (a flag), else $STMFD_SOCKET,
// else <$STMFD_STATE_DIR>/stmfd.sock, else the first default that exists.
func SocketPath(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if s := os.Getenv("STMFD_SOCKET"); s != "" {
		return s
	}
	if d := os.Getenv("STMFD_STATE_DIR"); d != "" {
		return filepath.Join(d, "stmfd.sock")
	}
	for _, s := range []string{InstalledSocket, DevSocket} {
		if _, err := os.Stat(s); err == nil {
			return s
		}
	}
	return InstalledSocket
}

// ErrUnavailable wraps failures to reach the daemon at all.
var ErrUnavailable = errors.New("stmfd is not reachable")

// Client talks to one stmfd. It is safe for concurrent use.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

// Socket is the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// maxResponse bounds what the client reads from the daemon.
const maxResponse = 64 << 20

// Call invokes method with req and decodes the answer into resp (which may
// be nil). API failures are returned as *api.Error.
func (c *Client) Call(ctx context.Context, method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", method, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://stmfd/v1/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnavailable, c.socket, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("reading %s response: %w", method, err)
	}
	return decodeAnswer(method, hresp.StatusCode, data, resp)
}

// decodeAnswer decodes a single-document answer: an *api.Error for a
// failure, else the result into resp (which may be nil).
func decodeAnswer(method string, status int, data []byte, resp any) error {
	if status != http.StatusOK {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
			return eb.Error
		}
		return &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("%s: HTTP %d: %s", method, status, bytes.TrimSpace(data))}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("decoding %s response: %w", method, err)
	}
	return nil
}

func call[Resp any](ctx context.Context, c *Client, method string, req any) (Resp, error) {
	var r Resp
	err := c.Call(ctx, method, req, &r)
	return r, err
}

// GetState is stmfadm list-state.
func (c *Client) GetState(ctx context.Context) (api.State, error) {
	return call[api.State](ctx, c, api.MethodGetState, api.Empty{})
}

// ListLUs returns every configured LU in creation order.
func (c *Client) ListLUs(ctx context.Context) ([]api.LU, error) {
	return call[[]api.LU](ctx, c, api.MethodListLUs, api.Empty{})
}

// CreateLU creates an LU and registers it.
func (c *Client) CreateLU(ctx context.Context, r api.CreateLURequest) (api.LU, error) {
	return call[api.LU](ctx, c, api.MethodCreateLU, r)
}

// ImportLU re-registers an LU from the metadata stored with its data.
func (c *Client) ImportLU(ctx context.Context, r api.ImportLURequest) (api.LU, error) {
	return call[api.LU](ctx, c, api.MethodImportLU, r)
}

// ModifyLU changes an LU's size or modifiable properties.
func (c *Client) ModifyLU(ctx context.Context, r api.ModifyLURequest) (api.LU, error) {
	return call[api.LU](ctx, c, api.MethodModifyLU, r)
}

// DeleteLU deregisters an LU (the backing store is kept).
func (c *Client) DeleteLU(ctx context.Context, r api.DeleteLURequest) error {
	return c.Call(ctx, api.MethodDeleteLU, r, nil)
}

// OnlineLU brings an LU online.
func (c *Client) OnlineLU(ctx context.Context, guid string) error {
	return c.Call(ctx, api.MethodOnlineLU, api.GUIDRequest{GUID: guid}, nil)
}

// OfflineLU takes an LU offline (its views stay).
func (c *Client) OfflineLU(ctx context.Context, guid string) error {
	return c.Call(ctx, api.MethodOfflineLU, api.GUIDRequest{GUID: guid}, nil)
}

// ListViews returns an LU's view entries by entry number.
func (c *Client) ListViews(ctx context.Context, guid string) ([]api.View, error) {
	return call[[]api.View](ctx, c, api.MethodListViews, api.GUIDRequest{GUID: guid})
}

// AddView adds a view entry and returns it with its entry number and LUN.
func (c *Client) AddView(ctx context.Context, r api.AddViewRequest) (api.View, error) {
	return call[api.View](ctx, c, api.MethodAddView, r)
}

// RemoveView removes one view entry.
func (c *Client) RemoveView(ctx context.Context, guid string, entry int) error {
	return c.Call(ctx, api.MethodRemoveView, api.RemoveViewRequest{GUID: guid, Entry: entry}, nil)
}

// ListGroups returns the host or target groups in creation order.
func (c *Client) ListGroups(ctx context.Context, kind api.GroupKind) ([]api.Group, error) {
	return call[[]api.Group](ctx, c, api.MethodListGroups, api.GroupRequest{Kind: kind})
}

// CreateGroup creates an empty group.
func (c *Client) CreateGroup(ctx context.Context, kind api.GroupKind, name string) error {
	return c.Call(ctx, api.MethodCreateGroup, api.GroupRequest{Kind: kind, Name: name}, nil)
}

// DeleteGroup deletes a group no view uses.
func (c *Client) DeleteGroup(ctx context.Context, kind api.GroupKind, name string) error {
	return c.Call(ctx, api.MethodDeleteGroup, api.GroupRequest{Kind: kind, Name: name}, nil)
}

// AddGroupMember adds a member to a group.
func (c *Client) AddGroupMember(ctx context.Context, kind api.GroupKind, group, member string) error {
	return c.Call(ctx, api.MethodAddGroupMember, api.MemberRequest{Kind: kind, Group: group, Member: member}, nil)
}

// RemoveGroupMember removes a member from a group.
func (c *Client) RemoveGroupMember(ctx context.Context, kind api.GroupKind, group, member string) error {
	return c.Call(ctx, api.MethodRemoveGroupMember, api.MemberRequest{Kind: kind, Group: group, Member: member}, nil)
}

// ListTargets returns the targets of every protocol with their live sessions.
func (c *Client) ListTargets(ctx context.Context) ([]api.Target, error) {
	return call[[]api.Target](ctx, c, api.MethodListTargets, api.Empty{})
}

// CreateTarget creates an iSCSI target (itadm create-target).
func (c *Client) CreateTarget(ctx context.Context, r api.TargetRequest) (api.Target, error) {
	return call[api.Target](ctx, c, api.MethodCreateTarget, r)
}

// ModifyTarget changes an iSCSI target (itadm modify-target).
func (c *Client) ModifyTarget(ctx context.Context, r api.TargetRequest) (api.Target, error) {
	return call[api.Target](ctx, c, api.MethodModifyTarget, r)
}

// DeleteTarget deletes an iSCSI target; force takes it offline first.
func (c *Client) DeleteTarget(ctx context.Context, name string, force bool) error {
	return c.Call(ctx, api.MethodDeleteTarget, api.NameRequest{Name: name, Force: force}, nil)
}

// OnlineTarget brings a target online.
func (c *Client) OnlineTarget(ctx context.Context, name string) error {
	return c.Call(ctx, api.MethodOnlineTarget, api.NameRequest{Name: name}, nil)
}

// OfflineTarget takes a target offline, ending its sessions.
func (c *Client) OfflineTarget(ctx context.Context, name string) error {
	return c.Call(ctx, api.MethodOfflineTarget, api.NameRequest{Name: name}, nil)
}

// ListTPGs returns the target portal groups.
func (c *Client) ListTPGs(ctx context.Context) ([]api.TPG, error) {
	return call[[]api.TPG](ctx, c, api.MethodListTPGs, api.Empty{})
}

// CreateTPG creates a target portal group.
func (c *Client) CreateTPG(ctx context.Context, r api.TPG) error {
	return c.Call(ctx, api.MethodCreateTPG, r, nil)
}

// DeleteTPG deletes a target portal group; force unbinds it from targets.
func (c *Client) DeleteTPG(ctx context.Context, name string, force bool) error {
	return c.Call(ctx, api.MethodDeleteTPG, api.NameRequest{Name: name, Force: force}, nil)
}

// ListInitiators returns the initiator contexts (secrets never included).
func (c *Client) ListInitiators(ctx context.Context) ([]api.Initiator, error) {
	return call[[]api.Initiator](ctx, c, api.MethodListInitiators, api.Empty{})
}

// CreateInitiator creates an initiator context.
func (c *Client) CreateInitiator(ctx context.Context, r api.InitiatorRequest) error {
	return c.Call(ctx, api.MethodCreateInitiator, r, nil)
}

// ModifyInitiator changes an initiator context.
func (c *Client) ModifyInitiator(ctx context.Context, r api.InitiatorRequest) error {
	return c.Call(ctx, api.MethodModifyInitiator, r, nil)
}

// DeleteInitiator deletes an initiator context.
func (c *Client) DeleteInitiator(ctx context.Context, name string) error {
	return c.Call(ctx, api.MethodDeleteInitiator, api.NameRequest{Name: name}, nil)
}

// GetDefaults returns itadm's global properties.
func (c *Client) GetDefaults(ctx context.Context) (api.Defaults, error) {
	return call[api.Defaults](ctx, c, api.MethodGetDefaults, api.Empty{})
}

// ModifyDefaults changes itadm's global properties.
func (c *Client) ModifyDefaults(ctx context.Context, r api.DefaultsRequest) error {
	return c.Call(ctx, api.MethodModifyDefaults, r, nil)
}

// ListFCPorts returns the FC HBA ports and their logged-in remote ports.
func (c *Client) ListFCPorts(ctx context.Context) ([]api.FCPort, error) {
	return call[[]api.FCPort](ctx, c, api.MethodListFCPorts, api.Empty{})
}
