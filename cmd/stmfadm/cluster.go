package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
)

const listClusterHelp = `Shows the cluster this stmfd belongs to (stmfd --cluster-endpoints): the etcd endpoints,
the lease timing, every live node with its health, its advertised portals (stmfd
--advertise-portal when given, else every address its iSCSI portals listen on) and each of
its target port groups with the group's relative port ids and the portals that listen for
it, and every LU with its owner, the owner's fencing token and lease, and each node's ALUA
state for it. A single-node stmfd answers that it is not in a cluster.

EXAMPLES:
   stmfadm list-cluster
   stmfadm list-cluster -o json`

const moveLUHelp = `Planned switchover (costar extension): the LU's owner turns its port groups standby,
waits for the commands in flight, gives its lease up, and NODE takes the LU over and turns
its port groups active/optimized. Initiators see ASYMMETRIC ACCESS STATE CHANGED and move
their I/O to NODE's paths (dm-multipath with the alua prioritizer, ESXi VMW_SATP_ALUA).
Returns once NODE serves the LU.

EXAMPLE:
   stmfadm move-lu 600144F0C0A80101000067A1B2C30001 node-b`

// addClusterCommands adds list-cluster and move-lu.
func addClusterCommands(app *cli.App, e *env) {
	app.Commands = append(app.Commands,
		&cli.Command{Name: "list-cluster", Usage: "list cluster members, LU owners and leases (cluster mode)",
			Flags: []cli.Flag{cliutil.OutputFlag()}, Description: listClusterHelp, Action: e.listCluster},
		&cli.Command{Name: "move-lu", Usage: "move a logical unit to another cluster node (planned switchover)",
			ArgsUsage: "lu-name node", Description: moveLUHelp, Action: e.moveLU},
	)
}

func (e *env) listCluster(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	st, err := e.client.ListCluster(c.Context)
	if err != nil {
		e.unexpected(err, "")
		return errFailed
	}
	if asJSON {
		return cliutil.WriteJSON(e.stdout, st)
	}
	writeCluster(e.stdout, st)
	if !st.EtcdHealthy {
		e.errorf("etcd did not answer (%s): the list is this node's last view", st.EtcdProblem)
		return errFailed
	}
	return nil
}

func writeCluster(w io.Writer, st api.ClusterStatus) {
	fmt.Fprintf(w, "Node: %s\n", st.Node)
	prop(w, "etcd", strings.Join(st.Endpoints, ","))
	prop(w, "Lease TTL", fmt.Sprintf("%gs (renewed every %gs, self-fence %gs before expiry)", st.LeaseTTL, st.RenewEvery, st.FenceMargin))
	for _, m := range st.Members {
		self := ""
		if m.Self {
			self = " (this node)"
		}
		fmt.Fprintf(w, "Member: %s%s\n", m.Name, self)
		prop(w, "Health", m.Health)
		prop(w, "Portals", orDash(strings.Join(m.Portals, ",")))
		if len(m.Groups) == 0 {
			prop(w, "Port Groups", "-")
		}
		for _, g := range m.Groups {
			v := "ports " + joinInts(g.Ports)
			if len(g.Portals) > 0 {
				v += "; portals " + strings.Join(g.Portals, ",")
			}
			prop(w, fmt.Sprintf("Port Group %d", g.ID), v)
		}
		prop(w, "Lease Left", fmt.Sprintf("%ds", m.LeaseTTL))
	}
	for _, l := range st.LUs {
		fmt.Fprintf(w, "LU Name: %s\n", l.GUID)
		writeLUCluster(w, &l.LUCluster)
	}
}

func writeLUCluster(w io.Writer, c *api.LUCluster) {
	owner := c.Owner
	if owner == "" {
		owner = "none"
	}
	prop(w, "Owner", owner)
	if c.Owner != "" {
		prop(w, "Fencing Token", fmt.Sprint(c.Token))
		if c.LeaseTTL > 0 {
			prop(w, "Lease Left", fmt.Sprintf("%ds", c.LeaseTTL))
		}
	}
	if c.MovingTo != "" {
		prop(w, "Moving To", c.MovingTo)
	}
	for _, s := range c.States {
		prop(w, "ALUA "+s.Node, fmt.Sprintf("group %d %s", s.Group, api.ALUAStateLabel(s.State)))
	}
}

func joinInts(v []uint16) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func (e *env) moveLU(c *cli.Context) error {
	ops, err := operands(c, 2, 2, "lu-name node")
	if err != nil {
		return err
	}
	res, err := e.client.MoveLU(c.Context, api.MoveLURequest{GUID: ops[0], Node: ops[1]})
	if err != nil {
		switch api.CodeOf(err) {
		case api.CodeLUNotFound:
			e.errorf("%s: no such logical unit", ops[0])
		case api.CodeNoSuchNode:
			e.errorf("%s: not a live cluster member (stmfadm list-cluster)", ops[1])
		default:
			e.unexpected(err, ops[0])
		}
		return errFailed
	}
	fmt.Fprintf(e.stdout, "LU %s is now served by %s (fencing token %d)\n", res.GUID, res.Owner, res.Token)
	return nil
}
