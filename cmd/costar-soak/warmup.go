package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// warmup logs every session in once and reads for a moment, then logs
// them out and waits for the target to be idle again (its idle reclaim
// runs a GC). The idle figures taken after it include what a target
// keeps once it has served sessions (pools, caches), so the check after
// the run measures growth from the load, not first use.
func (s *soak) warmup(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, s.o.sessions)
	for i := range s.o.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := s.baseCfg
			cfg.Initiator = fmt.Sprintf("%s-%03d", s.o.initiator, i)
			cfg.ISID = [6]byte{0x80, 0x00, 0x57, 0x55, byte(i >> 8), byte(i)}
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			sess, err := initiator.Dial(tctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer sess.Close()
			_, _ = sess.ClearUnitAttentions(tctx, s.o.lun)
			for j := range uint64(16) {
				lba := (uint64(i)*16 + j) * 64 % (s.m.blocks - 64)
				if _, err := sess.Do(tctx, s.o.lun, initiator.Read16(lba, 64), nil, 64*s.blockSize); err != nil {
					errs <- err
					return
				}
			}
			_ = sess.Logout(tctx)
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	// Idle: give the daemon time for its idle reclaim (a tick every 2 s,
	// then two GCs), so the live heap read next is after it.
	select {
	case <-time.After(idleWait):
	case <-ctx.Done():
	}
	return ctx.Err()
}

// idleWait covers two of stmfd's idle reclaim ticks.
const idleWait = 5 * time.Second
