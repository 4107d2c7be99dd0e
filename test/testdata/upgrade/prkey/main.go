// Command prkey registers a persistent reservation key with APTPL and
// takes a WRITE EXCLUSIVE - REGISTRANTS ONLY reservation with it, for
// make-upgrade-fixture.sh (libiscsi's command-line tools have no
// PERSISTENT RESERVE OUT). The ISID is the one test/harness.Login uses, so
// a test can log in as the same I_T nexus.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

func main() {
	portal := flag.String("portal", "", "ip:port")
	target := flag.String("target", "", "target IQN")
	name := flag.String("initiator", "", "initiator IQN")
	isid := flag.Uint("isid", 7, "last byte of the ISID")
	lun := flag.Uint64("lun", 0, "LUN")
	key := flag.String("key", "", "reservation key (hex)")
	flag.Parse()
	k, err := strconv.ParseUint(*key, 16, 64)
	if err == nil {
		err = run(*portal, *target, *name, byte(*isid), *lun, k)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "prkey:", err)
		os.Exit(1)
	}
}

func run(portal, target, name string, isid byte, lun, key uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, initiator.Config{Portal: portal, Target: target, Initiator: name,
		ISID: [6]byte{0x80, 0x00, 0x45, 0x53, 0x58, isid}})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	defer s.Close()
	if r, err := s.ClearUnitAttentions(ctx, lun); err != nil || r.Status != initiator.StatusGood {
		return fmt.Errorf("TEST UNIT READY: %v %w", r, err)
	}
	for _, c := range []struct {
		what     string
		sa, typ  byte
		key, sa2 uint64
	}{
		{"REGISTER (APTPL)", 0x00, 0, 0, key},
		{"RESERVE WE-RO (APTPL)", 0x01, 0x5, key, 0},
	} {
		cdb := make([]byte, 10)
		cdb[0], cdb[1], cdb[2] = 0x5f, c.sa, c.typ
		binary.BigEndian.PutUint32(cdb[5:9], 24)
		pl := make([]byte, 24)
		binary.BigEndian.PutUint64(pl[0:], c.key)
		binary.BigEndian.PutUint64(pl[8:], c.sa2)
		pl[20] = 0x01 // APTPL
		r, err := s.Do(ctx, lun, cdb, pl, 0)
		if err != nil || r.Status != initiator.StatusGood {
			return fmt.Errorf("%s: %v %w", c.what, r, err)
		}
	}
	return s.Logout(ctx)
}
