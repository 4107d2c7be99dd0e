package mgmt

import (
	"context"
	"errors"
	"os"

	"github.com/costar-project/costar/api"
)

// Declarative configuration (stmfadm export, stmfadm apply): the plan is
// computed in apply_plan*.go from the running configuration; its steps are
// the single verbs run as one transaction (apply_tx.go).

// ExportConfig is stmfadm export.
func (m *Manager) ExportConfig(context.Context, api.Empty) (api.ExportResult, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.runningLocked()
	return api.ExportResult{Config: r.export(), Generation: r.generation()}, nil
}

// ApplyConfig is stmfadm apply: it plans, and unless DryRun runs the plan
// as one transaction. Steps run one after the other, each validated as
// the single verb validates it; the first failure undoes every step before
// it and the state file is not written. The HTTP API keeps every other
// call out while it runs (serialised), so nothing slips between its steps;
// Generation guards the time between a shown plan and its apply.
func (m *Manager) ApplyConfig(ctx context.Context, req api.ApplyRequest) (api.ApplyResult, error) {
	m.mu.Lock()
	cur := m.runningLocked()
	m.mu.Unlock()
	gen := cur.generation()
	steps, err := planConfig(cur, req, pathExists)
	if err != nil {
		return api.ApplyResult{}, err
	}
	res := api.ApplyResult{Generation: gen, Steps: make([]string, 0, len(steps))}
	for _, s := range steps {
		res.Steps = append(res.Steps, s.cmd)
	}
	if req.Generation != "" && req.Generation != gen {
		return res, api.Errorf(api.CodeStateChanged, gen,
			"the configuration changed since the plan was made (generation %s, now %s); nothing was applied", req.Generation, gen)
	}
	if req.DryRun || len(steps) == 0 {
		return res, nil
	}
	orig := m.beginTx()
	if orig != cur.st {
		m.abortTx(orig)
		return res, api.Errorf(api.CodeStateChanged, gen, "the configuration changed while the plan was made; nothing was applied")
	}
	for i, s := range steps {
		if err := s.run(ctx, m); err != nil {
			m.abortTx(orig)
			m.log.Warn("apply failed; every step rolled back", "step", i+1, "command", s.cmd, "err", err)
			return res, stepErr(i+1, s.cmd, err)
		}
	}
	if err := m.commitTx(orig); err != nil {
		return res, err
	}
	m.mu.Lock()
	res.NewGeneration = m.runningLocked().generation()
	m.mu.Unlock()
	res.Applied = true
	m.log.Info("configuration applied", "steps", len(steps), "generation", res.NewGeneration, "prune", req.Prune)
	return res, nil
}

// stepErr keeps the failing verb's code and says which step failed.
func stepErr(n int, cmd string, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		msg := ae.Message
		if ae.Subject != "" {
			msg = ae.Subject + ": " + msg
		}
		return api.Errorf(ae.Code, cmd, "step %d failed: %s; every step was rolled back, nothing changed", n, msg)
	}
	return api.Errorf(api.CodeInternal, cmd, "step %d failed: %v; every step was rolled back, nothing changed", n, err)
}

func pathExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
