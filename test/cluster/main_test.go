// Package cluster holds the cluster-mode integration tests: an embedded
// three-member etcd on loopback (internal/cluster/clustertest) and two
// real stmfd processes sharing one backing file, driven with stmfadm,
// itadm and internal/initiator.
package cluster

import (
	"os"
	"testing"

	"github.com/costar-project/costar/test/harness"
)

var suite = harness.NewSuite("cluster")

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }
