package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
)

// TestAPIRejectsBadRequests: malformed, mistyped, oversized and unknown
// management calls are answered 400 with an INVALID_ARGUMENT error body,
// and the configuration is left exactly as it was.
func TestAPIRejectsBadRequests(t *testing.T) {
	r := newRig(t)
	srv, c := serve(t, r)
	if _, err := c.CreateLU(bg, api.CreateLURequest{DataFile: "/d/keep", Props: api.LUProps{Alias: ptr("keep")}}); err != nil {
		t.Fatal(err)
	}
	before, err := json.Marshal(listAll(t, r))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", srv.Path())
	}}}
	huge := `{"name":"` + strings.Repeat("x", maxRequest) + `","kind":"host"}`
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"not JSON", "POST", api.MethodCreateGroup, "{not json"},
		{"truncated JSON", "POST", api.MethodCreateGroup, `{"kind":"host","name":"hg"`},
		{"wrong type", "POST", api.MethodCreateGroup, `{"kind":"host","name":7}`},
		{"unknown field", "POST", api.MethodDeleteLU, `{"guid":"x","force_everything":true}`},
		{"body over the 1 MiB limit", "POST", api.MethodCreateGroup, huge},
		{"empty body", "POST", api.MethodCreateLU, ""},
		{"unknown call", "POST", "DropAllTables", "{}"},
		{"GET of a call", "GET", api.MethodCreateGroup, ""},
		{"path traversal", "POST", "../" + api.MethodCreateGroup, `{"kind":"host","name":"hg"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://stmfd/v1/"+tc.path, bytes.NewReader([]byte(tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			var eb api.ErrorBody
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || eb.Error == nil || eb.Error.Code != api.CodeInvalidArgument {
				t.Fatalf("HTTP %d %s; want 400 with %s", resp.StatusCode, body, api.CodeInvalidArgument)
			}
		})
	}
	after, err := json.Marshal(listAll(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("bad requests changed the configuration:\n before %s\n after  %s", before, after)
	}
}

// listAll is everything the list calls show.
func listAll(t *testing.T, r *rig) map[string]any {
	t.Helper()
	out := map[string]any{}
	out["lus"] = must[[]api.LU](t)(r.m.ListLUs(bg, api.Empty{}))
	out["host_groups"] = must[[]api.Group](t)(r.m.ListGroups(bg, api.GroupRequest{Kind: api.HostGroup}))
	out["targets"] = must[[]api.Target](t)(r.m.ListTargets(bg, api.Empty{}))
	return out
}
