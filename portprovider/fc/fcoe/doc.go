// Package fcoe is a software FCoE HBA for the FC port provider: one
// VN_Port in VN2VN mode (FC-BB-6 point-to-multipoint FCoE, no Fibre
// Channel Forwarder) over an Ethernet interface, using AF_PACKET sockets.
//
// The adapter claims an N_Port ID with FIP (probe, claim, beacon), learns
// remote VN_Ports from their claims and beacons, carries FC frames in
// FCoE between VN_Port MAC addresses (0E:FD:00 and the N_Port ID) and
// reports the claim as the link: up with our N_Port ID once claimed, down
// on carrier loss or a lost address. As fc.Adapter requires, it answers no
// ELS itself: the FIP-encapsulated FLOGI and LOGO Linux sends between
// VN_Ports go to the FC port, whose replies go back encapsulated. A
// neighbour silent for 2.5 beacon intervals is logged out (a LOGO the
// adapter hands the FC port on its behalf).
//
// Names default to FC-BB-5's NAA 2 forms of the interface MAC. The
// interface MTU bounds the FC payload (2158 carries the full 2112 bytes).
// Opening the sockets needs CAP_NET_RAW.
package fcoe
