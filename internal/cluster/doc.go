// Package cluster coordinates stmfd nodes through etcd: node membership
// (member.go), one owner per LU holding an etcd lease (owner.go), a
// fencing token per takeover and the self-fence deadline (fence.go).
//
// It is daemon-side: stmf and lu never import it (nor etcd). The daemon
// turns what it reports into per-LU ALUA states (stmf.SetLUAccess).
//
// Keys, under Config.Prefix:
//
//	nodes/<name>   Member JSON, under the node's session lease
//	owners/<guid>  Ownership JSON, under the LU's own lease; the key's
//	               create revision is the takeover's fencing token
//	fence/<guid>   the newest fencing token (no lease: it outlives owners)
//	move/<guid>    the node a planned switchover (move-lu) hands the LU to
package cluster
