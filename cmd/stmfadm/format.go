package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/costar-project/costar/api"
)

// COMSTAR's layouts.
const (
	propsFormat = "    %-18s: " // list-lu -v, list-target -v
	viewFormat  = "    %-13s: " // list-view
	lvl3Format  = "        %s"
	lvl4Format  = "            %s"
	// ctimeLayout is ctime(3)'s, as list-target -v prints "Logged in since".
	ctimeLayout = "Mon Jan _2 15:04:05 2006"
)

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNotSet(s string) string {
	if s == "" {
		return "not set"
	}
	return s
}

func enabled(b bool) string {
	if b {
		return "Enabled"
	}
	return "Disabled"
}

func prop(w io.Writer, label, value string) {
	fmt.Fprintf(w, propsFormat+"%s\n", label, value)
}

// writeLU prints one LU as stmfadm list-lu does.
func writeLU(w io.Writer, lu api.LU, verbose bool) {
	fmt.Fprintf(w, "LU Name: %s\n", lu.GUID)
	if !verbose {
		return
	}
	prop(w, "Operational Status", lu.Status)
	if lu.StatusDetail != "" {
		prop(w, "Status Detail", lu.StatusDetail)
	}
	prop(w, "Provider Name", lu.Provider)
	prop(w, "Alias", orDash(lu.Alias))
	prop(w, "View Entry Count", fmt.Sprint(lu.ViewEntryCount))
	prop(w, "Data File", orNotSet(lu.DataFile))
	prop(w, "Meta File", orNotSet(lu.MetaFile))
	if !lu.Available {
		// The backing store is not open: nothing more is known.
		return
	}
	prop(w, "Size", fmt.Sprint(lu.Size))
	prop(w, "Block Size", fmt.Sprint(lu.BlockSize))
	prop(w, "Management URL", orNotSet(lu.MgmtURL))
	prop(w, "Vendor ID", lu.VID)
	prop(w, "Product ID", lu.PID)
	prop(w, "Serial Num", orNotSet(lu.Serial))
	prop(w, "Write Protect", enabled(lu.WriteProtect))
	prop(w, "Writeback Cache", enabled(!lu.WriteCacheDisabled))
	prop(w, "Access State", lu.AccessState)
	// costar extensions, printed only when set so COMSTAR's layout stays.
	if lu.QoSIOPS != 0 {
		prop(w, "QoS IOPS Limit", fmt.Sprint(lu.QoSIOPS))
	}
	if lu.QoSMBps != 0 {
		prop(w, "QoS MB/s Limit", fmt.Sprintf("%d MiB/s", lu.QoSMBps))
	}
	if lu.ErrorState != "" { // costar extension: a remembered write-back failure
		prop(w, "Error State", lu.ErrorState)
	}
	if lu.Cluster != nil { // costar extension: cluster mode (cluster.go)
		writeLUCluster(w, lu.Cluster)
	}
}

func groupName(name string) string {
	if name == "" {
		return "All"
	}
	return name
}

// writeView prints one view entry as stmfadm list-view does.
func writeView(w io.Writer, v api.View) {
	fmt.Fprintf(w, "View Entry: %d\n", v.Entry)
	fmt.Fprintf(w, viewFormat+"%s\n", "Host group", groupName(v.HostGroup))
	fmt.Fprintf(w, viewFormat+"%s\n", "Target group", groupName(v.TargetGroup))
	fmt.Fprintf(w, viewFormat+"%d\n", "LUN", v.LUN)
}

// writeGroup prints a host or target group as list-hg / list-tg do.
func writeGroup(w io.Writer, kind api.GroupKind, g api.Group, verbose bool) {
	label := "Host Group"
	if kind == api.TargetGroup {
		label = "Target Group"
	}
	fmt.Fprintf(w, "%s: %s\n", label, g.Name)
	if verbose {
		for _, m := range g.Members {
			fmt.Fprintf(w, "\tMember: %s\n", m)
		}
	}
}

// writeTarget prints a target as stmfadm list-target does.
func writeTarget(w io.Writer, t api.Target, verbose bool, loc *time.Location) {
	fmt.Fprintf(w, "Target: %s\n", t.Name)
	if !verbose {
		return
	}
	status := "Offline"
	if t.Online {
		status = "Online"
	}
	prop(w, "Operational Status", status)
	prop(w, "Provider Name", t.Provider)
	prop(w, "Alias", orDash(t.Alias))
	prop(w, "Protocol", t.Protocol)
	prop(w, "Sessions", fmt.Sprint(len(t.Sessions)))
	for _, s := range t.Sessions {
		fmt.Fprintf(w, lvl3Format+"%s\n", "Initiator: ", s.Initiator)
		fmt.Fprintf(w, lvl4Format+"%s\n", "Alias: ", orDash(s.Alias))
		fmt.Fprintf(w, lvl4Format+"%s\n", "Logged in since: ", s.LoggedInSince.In(loc).Format(ctimeLayout))
	}
}

// writeState prints stmfadm list-state.
func writeState(w io.Writer, s api.State) {
	fmt.Fprintf(w, "%-18s: %s\n", "Operational Status", s.Operational)
	fmt.Fprintf(w, "%-18s: %s\n", "Config Status", s.Config)
	fmt.Fprintf(w, "%-18s: %s\n", "ALUA Status", s.ALUA)
	fmt.Fprintf(w, "%-18s: %d\n", "ALUA Node", s.ALUANode)
	writeALUAGroups(w, s.TargetPortGroups) // alua.go
}

// sbdadm's table.
const (
	sbdHeader = "\n\t      GUID                    DATA SIZE           SOURCE\n" +
		"--------------------------------  -------------------  ----------------\n"
)

// writeSbdRows prints sbdadm's header and one row per LU:
// "<guid lower-case>  <size, padded to 19>  <data file>".
func writeSbdRows(w io.Writer, lus []api.LU) {
	io.WriteString(w, sbdHeader)
	for _, lu := range lus {
		fmt.Fprintf(w, "%s  %-19d  %s\n", strings.ToLower(lu.GUID), lu.Size, lu.DataFile)
	}
}
