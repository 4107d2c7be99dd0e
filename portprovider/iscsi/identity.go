package iscsi

import (
	"fmt"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// SCSI identity of iSCSI ports and nexuses (RFC 7143 and SPC-4): the port
// provider is the only place that knows how iSCSI names ports; the LU
// sees TransportIDs and designators.

// initiatorPortName is the SCSI initiator port name "<iqn>,i,0x<ISID>".
func initiatorPortName(name string, isid [6]byte) string {
	return fmt.Sprintf("%s,i,0x%012x", name, isid[:])
}

// targetPortName is the SCSI target port name "<iqn>,t,0x<TPGT>".
func targetPortName(name string, tpgt uint16) string {
	return fmt.Sprintf("%s,t,0x%04x", name, tpgt)
}

// nexusInitiator is the initiator port of a session: TransportID format
// 01b (name and ISID) for the port, 00b (name) for the device.
func nexusInitiator(name string, isid [6]byte) stmf.Initiator {
	return stmf.Initiator{
		Name:     name,
		PortName: initiatorPortName(name, isid),
		PortID:   scsi.ISCSIPortTransportID(name, isid),
		DeviceID: scsi.ISCSIDeviceTransportID(name),
	}
}

// targetPortSpec is the target port of a target's portal group: named
// "<target>,t,0x<TPGT>", in ALUA target port group TPGT, with SCSI name
// string designators for the port and the target (protocol iSCSI, PIV).
func targetPortSpec(target string, tpgt uint16) stmf.PortSpec {
	spec := stmf.PortSpec{Protocol: scsi.ProtocolISCSI, TargetName: target, Name: targetPortName(target, tpgt),
		Group: tpgt, Designators: stmf.PortDesignators{PIV: true}}
	if d, ok := scsi.NameDesignator(spec.Name); ok {
		spec.Designators.Port = []scsi.Designator{d}
	}
	if d, ok := scsi.NameDesignator(target); ok {
		spec.Designators.Target = []scsi.Designator{d}
	}
	return spec
}
