package daemon

import (
	"context"

	"github.com/costar-project/costar/internal/metrics"
	"github.com/costar-project/costar/portprovider/iscsi"
)

// newMetrics builds the Prometheus exporter over the framework, the
// management plane (LU aliases) and the iSCSI port provider. It listens
// only once Start calls Reconfigure with --metrics-listen.
func (d *Daemon) newMetrics() (*metrics.Server, error) {
	src := metrics.Sources{Stats: d.fw.Stats, Aliases: d.mgr.LUAliases, ALUA: d.fw.ALUAStates}
	if d.iscsi != nil {
		srv := d.iscsi
		src.ISCSI = func() iscsi.Stats { return srv.Stats() }
	}
	return metrics.New(src, d.log.With("component", "metrics"))
}

// Metrics is the exporter; a config reload calls its Reconfigure with the
// new --metrics-listen.
func (d *Daemon) Metrics() *metrics.Server { return d.metrics }

// startMetrics opens the configured metrics listener, if any.
func (d *Daemon) startMetrics(ctx context.Context) error {
	return d.metrics.Reconfigure(ctx, d.cfg.MetricsListen)
}
