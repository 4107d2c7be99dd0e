package mgmt

import (
	"net/http"
	"strings"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
)

// applyTx is an apply in progress. Its steps are the single verbs
// (CreateGroup, AddView, ...), each validating and applying its change
// live as it always does; while tx is set, commitLocked records the state
// before each step and the step's undo instead of saving. The transaction
// then saves once, or undoes every step in reverse order and the state
// file is never written.
type applyTx struct {
	steps []txStep
}

type txStep struct {
	prev *store.State // the state the step's undo expects
	undo func()       // nil: the step changed stored state only
}

func (tx *applyTx) record(prev *store.State, undo func()) {
	tx.steps = append(tx.steps, txStep{prev: prev, undo: undo})
}

// onUndoLocked adds an undo for a live change no verb's undo covers (an
// LU's properties, an ALUA state, an LU the step opened).
func (m *Manager) onUndoLocked(undo func()) {
	if m.tx != nil {
		m.tx.record(m.state, undo)
	}
}

// beginTx starts a transaction; the caller holds m.api exclusively.
func (m *Manager) beginTx() *store.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tx = &applyTx{}
	return m.state
}

// commitTx saves the transaction's final state; when the save fails
// everything is undone.
func (m *Manager) commitTx(orig *store.State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := m.tx
	m.tx = nil
	if m.state == orig {
		return nil
	}
	err := m.commitLocked(m.state.Clone(), nil)
	if err != nil {
		m.rollbackLocked(tx, orig)
	}
	return err
}

// abortTx undoes every step of the transaction.
func (m *Manager) abortTx(orig *store.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := m.tx
	m.tx = nil
	m.rollbackLocked(tx, orig)
}

func (m *Manager) rollbackLocked(tx *applyTx, orig *store.State) {
	for i := len(tx.steps) - 1; i >= 0; i-- {
		s := tx.steps[i]
		m.adopt(s.prev)
		if s.undo != nil {
			s.undo()
		}
	}
	m.adopt(orig)
}

// serialised keeps every other management API call out while an apply
// runs, so nothing is seen or slips in between its steps. Other calls
// share the gate and wait for each other on the manager's lock, as they
// always did: a long zfs call does not hold up a list.
func (m *Manager) serialised(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.URL.Path, "/v1/") == api.MethodApplyConfig {
			m.api.Lock()
			defer m.api.Unlock()
		} else {
			m.api.RLock()
			defer m.api.RUnlock()
		}
		h.ServeHTTP(w, r)
	})
}
